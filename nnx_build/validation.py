"""From a parsed document to a :class:`Spec`, with every problem located.

pydantic errors become :class:`SpecError`s with a stable code, the expected and the
received value, a did-you-mean for names, and the ``FILE:LINE:COL`` of the key.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import Location, SpecError, SpecErrors, did_you_mean
from .loader import Document

__all__ = ["locator", "pydantic_errors", "validate_document"]

_WRONG_TYPE = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "string_type": "a string", "list_type": "a list", "tuple_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
    "none_required": "null",
}


def locator(doc: Document) -> Callable[[tuple[Any, ...]], Location]:
    """Maps a path in the normalised spec to the location of the raw text."""

    def locate(path: tuple[Any, ...]) -> Location:
        return doc.locate(raw_path(doc.data, path))

    return locate


def raw_path(data: Any, path: tuple[Any, ...]) -> tuple[Any, ...]:
    """Follows ``path`` through raw data, stepping into ``- name: {...}`` shorthands."""
    out: list[Any] = []
    cur = data
    for part in path:
        if isinstance(cur, dict):
            if part in cur:
                out.append(part)
                cur = cur[part]
                continue
            if len(cur) == 1 and "type" not in cur:
                (k, v), = cur.items()
                if isinstance(v, dict):
                    out.append(k)
                    cur = v
                    if part == "name":
                        break
                    if part in cur:
                        out.append(part)
                        cur = cur[part]
                    continue
            if part == "name":
                continue
            break
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            out.append(part)
            cur = cur[part]
        else:
            break
    return tuple(out)


def _fields_at(model: Any, loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model that ``loc`` (minus its last part) points into."""
    cur = model
    for part in loc[:-1]:
        cur = _unwrap(cur, part)
        if cur is None:
            return []
    cur = _unwrap(cur, None) if not (isinstance(cur, type) and issubclass(cur, BaseModel)) else cur
    if isinstance(cur, type) and issubclass(cur, BaseModel):
        return [info.alias or n for n, info in cur.model_fields.items()]
    return []


def _unwrap(tp: Any, part: Any) -> Any:
    """One step into a type along ``part`` (a field name or an index/key)."""
    for _ in range(8):
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            models = [a for a in typing.get_args(tp) if a is not type(None)]
            models = [m for m in models if (isinstance(m, type) and issubclass(m, BaseModel)) or typing.get_origin(m) in (list, dict)]
            if not models:
                return None
            tp = models[0]
            continue
        break
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if part is None:
            return tp
        fields = {info.alias or n: info for n, info in tp.model_fields.items()}
        info = fields.get(part)
        return info.annotation if info else None
    origin = typing.get_origin(tp)
    if origin is list:
        return typing.get_args(tp)[0]
    if origin is dict:
        return typing.get_args(tp)[1]
    return None


def _without_union_tags(data: Any, loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], bool]:
    """Drops the parts pydantic adds to name a union member (``'str'``, ``'list[str]'``...).

    A part is such a tag when the data it should index has no such key. Returns the
    cleaned loc and whether a tag was dropped.
    """
    out: list[Any] = []
    dropped = False
    cur = data
    for i, part in enumerate(loc):
        if isinstance(part, str) and part.startswith("function-"):
            continue
        last = i == len(loc) - 1
        if isinstance(cur, dict) and part not in cur and len(cur) == 1 and "type" not in cur:
            (_, body), = cur.items()
            if isinstance(body, dict):  # `- name: {...}` step shorthand
                cur = body
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            cur = cur[part]
        elif isinstance(part, str) and (not isinstance(cur, dict) or not last):
            dropped = True
            continue
        else:
            cur = None
        out.append(part)
    return tuple(out), dropped


def pydantic_errors(
    exc: ValidationError,
    base: tuple[Any, ...],
    locate: Callable[[tuple[Any, ...]], Location],
    model: Any = None,
    data: Any = None,
) -> list[SpecError]:
    """Converts a pydantic ``ValidationError`` into located spec errors.

    With ``data`` (the validated input), the errors pydantic gives for each member of
    a union are merged into one: ``field 'in' expects a string or a list, received 3``.
    """
    from .schemas.common import Config

    out: list[SpecError] = []
    merged: dict[tuple[Any, ...], SpecError] = {}
    for e in exc.errors(include_url=False):
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        union = False
        if data is not None:
            loc, union = _without_union_tags(data, tuple(e["loc"]))
        path = (*base, *loc)
        if union and loc in merged and e["type"] in _WRONG_TYPE:
            prev = merged[loc]
            head, _, tail = prev.message.partition(" expects ")
            wanted, _, received = tail.rpartition(", received ")
            if _WRONG_TYPE[e["type"]] not in wanted:
                prev.message = f"{head} expects {wanted} or {_WRONG_TYPE[e['type']]}, received {received}"
                prev.args = (str(prev),)
            continue
        kind = e["type"]
        field = next((str(p) for p in reversed(loc) if isinstance(p, str)), "")
        received = e.get("input")
        where = f"field '{field}'" if field else "value"
        if kind == "missing":
            code = "missing-field"
            msg = f"missing required field '{field}'"
            path = path[:-1]
        elif kind == "extra_forbidden":
            code = "unknown-field"
            choices = _fields_at(model, loc) if model is not None else []
            if isinstance(model, type) and issubclass(model, Config):
                choices = [c for c in choices if c != "type"]  # a layer's tag, not a field to suggest
            msg = f"unknown field '{field}'{did_you_mean(field, choices)}"
            if choices:
                msg += f"; expected one of: {', '.join(choices)}"
        elif kind in _WRONG_TYPE:
            code = "wrong-type"
            msg = f"{where} expects {_WRONG_TYPE[kind]}, received {_show(received)}"
        elif kind == "literal_error":
            code = "bad-value"
            expected = str(e["ctx"].get("expected", ""))
            msg = f"{where} expects {expected}, received {_show(received)}"
            if isinstance(received, str):
                msg += did_you_mean(received, re.findall(r"'([^']*)'", expected))
        elif kind == "value_error" and field == "format":
            code = "unsupported-format"
            msg = str(e["ctx"]["error"]) if "ctx" in e else e["msg"]
        elif kind == "value_error":
            code = "bad-value"
            msg = f"{where}: {e['ctx']['error'] if 'ctx' in e else e['msg']}"
        else:
            code = "bad-value"
            msg = f"{where}: {e['msg'][0].lower() + e['msg'][1:]}, received {_show(received)}"
        err = SpecError(code, msg, locate(path), path)
        if union and code == "wrong-type":
            if loc in merged:
                continue
            merged[loc] = err
        out.append(err)
    return out


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validate_document(doc: Document, more: Callable[[Any], list[SpecError]] | None = None) -> Any:
    """Validates parsed data as a :class:`Spec` (raises :class:`SpecErrors`).

    On failure the broken parts are set aside and, when the rest is a valid spec,
    ``more(spec)`` adds the problems a later stage finds in it (the compiler's), so one
    run reports them all.
    """
    from .schemas.spec import Spec

    if not isinstance(doc.data, dict):
        raise SpecErrors(
            [SpecError("wrong-type", f"a spec is a mapping with 'format', 'inputs' and 'layers'; received {type(doc.data).__name__}", doc.locate(()))]
        )
    try:
        return Spec.model_validate(doc.data)
    except ValidationError as e:
        errors = pydantic_errors(e, (), locator(doc), Spec, doc.data)
    # all problems in one run: set the broken parts aside and check the rest too
    repaired = _repair(doc.data, [err.path for err in errors])
    if repaired is not None and more is not None:
        try:
            spec = Spec.model_validate(repaired)
        except ValidationError:
            spec = None
        if spec is not None:
            errors += more(spec)
    raise SpecErrors(errors)


_PLACEHOLDER_OK = {"doc", "seed", "dims", "mesh", "max_params", "max_bytes", "tests", "train", "dtype", "param_dtype", "outputs"}


def _step_stub(step: Any) -> dict[str, Any]:
    """An identity step keeping a broken step's name and wiring, so later steps still resolve."""
    body = step
    if isinstance(step, dict) and "type" not in step and len(step) == 1:
        (name, body), = step.items()
        body = {"name": name, **body} if isinstance(body, dict) else {"name": name}
    stub: dict[str, Any] = {"type": "identity"}
    if isinstance(body, dict):
        for key in ("name", "in", "as"):
            value = body.get(key)
            if isinstance(value, str) and value.isidentifier():
                stub[key] = value
            elif key != "name" and isinstance(value, list) and all(isinstance(v, str) for v in value):
                stub[key] = value
            elif key == "in" and isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
                stub[key] = list(value.values())[:1]
    if isinstance(stub.get("in"), list) and len(stub["in"]) != 1:
        stub["in"] = stub["in"][:1]
    if isinstance(stub.get("as"), list):
        stub["as"] = stub["as"][0] if stub["as"] else None
        if stub["as"] is None:
            del stub["as"]
    return stub


def _repair(data: dict[str, Any], paths: list[tuple[Any, ...]]) -> dict[str, Any] | None:
    """A copy of ``data`` with each broken part replaced, or None when that would mislead."""
    import copy

    from .schemas.spec import Spec

    out = copy.deepcopy(data)
    for path in paths:
        if not path:
            return None
        head = path[0]
        if head == "layers" and len(path) > 1 and isinstance(path[1], int) and isinstance(out.get("layers"), list):
            out["layers"][path[1]] = _step_stub(out["layers"][path[1]])
        elif (
            head == "blocks" and len(path) > 3 and path[2] == "layers" and isinstance(path[3], int)
            and isinstance(out.get("blocks"), dict) and isinstance(out["blocks"].get(path[1]), dict)
            and isinstance(out["blocks"][path[1]].get("layers"), list)
        ):
            out["blocks"][path[1]]["layers"][path[3]] = _step_stub(out["blocks"][path[1]]["layers"][path[3]])
        elif head == "methods" and len(path) > 1 and isinstance(out.get("methods"), dict):
            out["methods"].pop(path[1], None)
        elif head == "format":
            out["format"] = 1
        elif head == "name":
            out["name"] = "spec"
        elif head in _PLACEHOLDER_OK or (isinstance(head, str) and head not in Spec.model_fields):
            out.pop(head, None)  # optional, or unknown: nothing else depends on it
        else:
            return None
    return out
