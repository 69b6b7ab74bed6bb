"""YAML / JSON documents with source positions.

Only plain data is accepted: mappings, sequences, strings, numbers, booleans and null.
Duplicate keys, unknown YAML tags (``!!python/object/apply`` ...), alias bombs, deep
nesting and oversized files are refused with located errors; nothing is ever imported
or called while loading.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import Location, SpecError, SpecErrors

__all__ = ["Document", "Limits", "parse_document", "read_source"]

_PLAIN_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}


#: libyaml's composer when present: the same nodes and marks, 5-50x faster on big files
_COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Limits:
    """Bounds on what a spec document may be; each has its own error code.

    Attributes:
      max_bytes: size of the spec file (``too-large``).
      max_nodes: values once YAML aliases are expanded (``too-many-nodes``).
      max_depth: nesting of mappings and lists (``too-deep``).
      max_string: length of one string (``too-long-string``).
      max_modules: module instances the spec unrolls to: every layer and block use,
        times ``repeat`` unless ``scan: true`` (``too-many-modules``).

    Each is raised from the command line with ``--limit NAME=VALUE``.
    """

    max_bytes: int = 8 * 1024 * 1024
    max_nodes: int = 200_000
    max_depth: int = 64
    max_string: int = 64 * 1024
    max_modules: int = 10_000

    @staticmethod
    def how_to_raise(name: str) -> str:
        """The sentence every limit error ends with."""
        return f"raise it with --limit {name}=N on the command line, or Limits({name}=N) in Python"


@dataclass
class Document:
    """Plain data and where each piece of it came from."""

    data: Any
    file: str
    positions: dict[tuple[Any, ...], tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: tuple[Any, ...]) -> Location:
        """The location of ``path``, or of its closest located ancestor."""
        path = tuple(path)
        while path not in self.positions and path:
            path = path[:-1]
        line, col = self.positions.get(path, (1, 1))
        return Location(self.file, line, col)

    def error(self, code: str, message: str, path: tuple[Any, ...] = ()) -> SpecError:
        return SpecError(code, message, self.locate(path), tuple(path))


def read_source(source: str | os.PathLike[str]) -> tuple[str, str]:
    """Returns ``(text, file name)`` for a path or for spec text itself."""
    if isinstance(source, os.PathLike) or (
        isinstance(source, str) and "\n" not in source and source.endswith((".yaml", ".yml", ".json"))
    ):
        path = Path(source)
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise SpecErrors(
                [SpecError("file-not-found", f"cannot read spec file: {e.strerror}", Location(str(path)))]
            ) from None
        try:
            return raw.decode("utf-8"), str(path)
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
            raise SpecErrors(
                [
                    SpecError(
                        "encoding",
                        f"spec files must be UTF-8; received byte 0x{raw[e.start]:02x}",
                        Location(str(path), line, col),
                    )
                ]
            ) from None
    return str(source), "<string>"


def parse_document(text: str, file: str = "<string>", limits: Limits = Limits()) -> Document:
    """Parses YAML (or JSON, a YAML subset) into plain data with positions."""
    if len(text.encode("utf-8", errors="replace")) > limits.max_bytes:
        raise SpecErrors(
            [
                SpecError(
                    "file-too-large",
                    f"spec is larger than {limits.max_bytes:,} bytes; {Limits.how_to_raise('max_bytes')}",
                    Location(file),
                )
            ]
        )
    if file.endswith(".json"):
        try:
            json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecErrors([SpecError("syntax", f"invalid JSON: {e.msg}", Location(file, e.lineno, e.colno))]) from None
    try:
        root = yaml.compose(text, Loader=_COMPOSER)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        loc = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
        if "nesting depth" in str(e.problem):  # libyaml's own bound (1000 levels)
            raise SpecErrors(
                [SpecError("too-deep", f"spec nests deeper than {limits.max_depth} levels; {Limits.how_to_raise('max_depth')}", loc)]
            ) from None
        raise SpecErrors([SpecError("syntax", f"invalid YAML: {e.problem or e.context}", loc)]) from None
    except yaml.YAMLError as e:
        raise SpecErrors([SpecError("syntax", f"invalid YAML: {e}", Location(file))]) from None
    except RecursionError:
        raise SpecErrors(
            [SpecError("too-deep", f"spec nests deeper than {limits.max_depth} levels; {Limits.how_to_raise('max_depth')}", Location(file))]
        ) from None
    doc = Document(None, file)
    if root is None:
        raise SpecErrors([SpecError("empty", "spec is empty; expected a mapping with 'format', 'inputs', 'layers'", Location(file))])
    builder = _Builder(doc, limits)
    try:
        doc.data = builder.build(root, (), 0)
    except RecursionError:
        builder.errors.append(
            SpecError("too-deep", f"spec nests deeper than {limits.max_depth} levels; {Limits.how_to_raise('max_depth')}", Location(file))
        )
    if builder.errors:
        raise SpecErrors(builder.errors)
    return doc


class _Builder:
    def __init__(self, doc: Document, limits: Limits):
        self.doc = doc
        self.limits = limits
        self.nodes = 0
        self.errors: list[SpecError] = []
        self._scalar = yaml.SafeLoader("")

    def _loc(self, node: Node) -> Location:
        return Location(self.doc.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def _fail(self, code: str, message: str, node: Node) -> None:
        self.errors.append(SpecError(code, message, self._loc(node)))

    def build(self, node: Node, path: tuple[Any, ...], depth: int) -> Any:
        self.nodes += 1
        if self.nodes > self.limits.max_nodes:
            if self.nodes == self.limits.max_nodes + 1:
                self._fail(
                    "too-many-nodes",
                    f"spec expands to more than {self.limits.max_nodes} values (alias bomb?); "
                    f"{Limits.how_to_raise('max_nodes')}",
                    node,
                )
            return None
        if depth > self.limits.max_depth:
            self._fail("too-deep", f"spec nests deeper than {self.limits.max_depth} levels; {Limits.how_to_raise('max_depth')}", node)
            return None
        self.doc.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, ScalarNode):
            if node.tag not in _PLAIN_TAGS:
                self._fail(
                    "yaml-tag",
                    f"YAML tag '{node.tag}' is not allowed; specs hold plain data only "
                    "(strings, numbers, booleans, null, lists, mappings)",
                    node,
                )
                return None
            try:
                value = self._scalar.construct_object(node, deep=True)
            except (ValueError, OverflowError) as e:  # e.g. an integer past Python's 4300 digits
                self._fail("too-large", f"cannot read value {node.value[:40]!r}...: {e}", node)
                return None
            if isinstance(value, str) and len(value) > self.limits.max_string:
                self._fail(
                    "too-long-string",
                    f"string of {len(value):,} characters, longer than {self.limits.max_string:,}; "
                    f"{Limits.how_to_raise('max_string')}",
                    node,
                )
                return None
            return value
        if isinstance(node, SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                self._fail("yaml-tag", f"YAML tag '{node.tag}' is not allowed; specs hold plain data only", node)
                return None
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            if node.tag != "tag:yaml.org,2002:map":
                self._fail("yaml-tag", f"YAML tag '{node.tag}' is not allowed; specs hold plain data only", node)
                return None
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode) and key_node.tag == "tag:yaml.org,2002:merge":
                    self._fail("yaml-tag", "YAML merge keys ('<<') are not supported; write the keys out", key_node)
                    continue
                if not isinstance(key_node, ScalarNode) or key_node.tag not in _PLAIN_TAGS - {"tag:yaml.org,2002:null"}:
                    self._fail("bad-key", "mapping keys must be plain strings or numbers", key_node)
                    continue
                try:
                    key = self._scalar.construct_object(key_node)
                except (ValueError, OverflowError) as e:
                    self._fail("too-large", f"cannot read key {key_node.value[:40]!r}...: {e}", key_node)
                    continue
                if key in out:
                    first = self.doc.positions.get((*path, key), (0, 0))
                    self._fail(
                        "duplicate-key",
                        f"key '{key}' appears twice in this mapping (first at line {first[0]}); remove one",
                        key_node,
                    )
                    continue
                self.doc.positions[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                out[key] = self.build(value_node, (*path, key), depth + 1)
            return out
        self._fail("syntax", f"unsupported YAML node {type(node).__name__}", node)
        return None
