"""Finding spec files with tests, and the ``-k`` filter over case ids.

A file is taken for a spec only when it unmistakably is one, so that other
``.yaml`` / ``.json`` files of a project (fixtures, reports, documents that happen
to have ``format:`` and ``tests:`` keys) are left alone. It must have a top-level
``tests`` key and one of:

* an integer ``format`` and a ``layers`` or ``inputs`` key;
* the editor line ``# yaml-language-server: $schema=...nnx-spec...`` (JSON: a
  ``"$schema"`` naming ``nnx-spec``);
* a ``format`` key and a place under a folder declared to hold specs (the pytest
  ini option ``nnx_build_specs``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["SUFFIXES", "discover", "display_path", "keyword_matcher", "looks_like_spec_with_tests"]

SUFFIXES = (".yaml", ".yml", ".json")
_SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".pytest_cache", "build", "dist"}
_MAX_SNIFF = 8 * 1024 * 1024

_SCHEMA_LINE = re.compile(r"^#\s*yaml-language-server:\s*\$schema=\S*nnx-spec", re.M)
_YAML_TESTS = re.compile(r"^tests\s*:", re.M)
_YAML_FORMAT = re.compile(r"^format\s*:", re.M)
_YAML_INT_FORMAT = re.compile(r"^format\s*:\s*\+?[0-9]+\s*(#.*)?$", re.M)
_YAML_BODY = re.compile(r"^(layers|inputs)\s*:", re.M)


def _read(path: Path) -> str | None:
    try:
        if not path.is_file() or path.stat().st_size > _MAX_SNIFF:
            return None
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _json_verdict(text: str, declared: bool) -> bool | None:
    """The verdict on a JSON file that parses; ``None`` when it does not parse."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or "tests" not in data:
        return False
    fmt = data.get("format")
    int_format = isinstance(fmt, int) and not isinstance(fmt, bool)
    schema = data.get("$schema")
    return bool(
        (int_format and ("layers" in data or "inputs" in data))
        or (isinstance(schema, str) and "nnx-spec" in schema)
        or (declared and "format" in data)
    )


def looks_like_spec_with_tests(path: str | os.PathLike[str], *, declared: bool = False) -> bool:
    """Whether ``path`` is unmistakably a spec with a ``tests:`` section (see the module doc).

    ``declared``: the file lies where specs are declared to be (``nnx_build_specs``).
    Reads the file's text but does not load it as a spec, so a broken spec still counts
    (and gives a failing test instead of being skipped).
    """
    path = Path(path)
    if path.suffix not in SUFFIXES:
        return False
    text = _read(path)
    if text is None:
        return False
    if path.suffix == ".json":
        verdict = _json_verdict(text, declared)
        if verdict is not None:
            return verdict
        # broken JSON: the same test on the text (a broken spec is still a spec)
        has = lambda key, value="": re.search(rf'"{key}"\s*:\s*{value}', text) is not None  # noqa: E731
        return has("tests") and ((has("format", "[0-9]") and (has("layers") or has("inputs"))) or (declared and has("format")))
    if not _YAML_TESTS.search(text):
        return False
    return bool(
        (_YAML_INT_FORMAT.search(text) and _YAML_BODY.search(text))
        or _SCHEMA_LINE.search(text)
        or (declared and _YAML_FORMAT.search(text))
    )


def discover(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Spec files with tests under ``paths`` (files are taken as given, folders searched).

    Raises:
      FileNotFoundError: a path does not exist.
    """
    found: dict[Path, None] = {}
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise FileNotFoundError(f"no such file or folder: {p}")
        if p.is_file():
            found[p] = None
            continue
        for root, dirs, files in os.walk(p):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
            for name in sorted(files):
                f = Path(root) / name
                if looks_like_spec_with_tests(f):
                    found[f] = None
    return list(found)


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the working directory when it is below it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


# ---- -k expressions ---------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")


def keyword_matcher(expr: str | None) -> Callable[[str], bool]:
    """A predicate for ``-k EXPR``: words match as case-insensitive substrings of a case id.

    ``and``, ``or``, ``not`` and parentheses combine them, as in pytest:
    ``-k "resnet and not golden"``.

    Raises:
      ValueError: the expression does not parse.
    """
    if not expr or not expr.strip():
        return lambda _id: True
    tokens = _TOKEN.findall(expr)
    pos = 0

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise ValueError(f"-k expression ends early: {expr!r}")
        pos += 1
        return tokens[pos - 1]

    def binary(op: str, operand: Callable[[], Callable[[str], bool]]) -> Callable[[str], bool]:
        parts = [operand()]
        while pos < len(tokens) and tokens[pos] == op:
            take()
            parts.append(operand())
        if len(parts) == 1:
            return parts[0]
        return (lambda s: any(p(s) for p in parts)) if op == "or" else (lambda s: all(p(s) for p in parts))

    def or_() -> Callable[[str], bool]:
        return binary("or", and_)

    def and_() -> Callable[[str], bool]:
        return binary("and", not_)

    def not_() -> Callable[[str], bool]:
        tok = take()
        if tok == "not":
            inner = not_()
            return lambda s: not inner(s)
        if tok == "(":
            inner = or_()
            if take() != ")":
                raise ValueError(f"-k expression has an unclosed '(': {expr!r}")
            return inner
        if tok in (")", "and", "or"):
            raise ValueError(f"-k expression has an unexpected '{tok}': {expr!r}")
        word = tok.lower()
        return lambda s: word in s.lower()

    pred = or_()
    if pos != len(tokens):
        raise ValueError(f"-k expression has an unexpected '{tokens[pos]}': {expr!r}")
    return pred
