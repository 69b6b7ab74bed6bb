"""Moving catalogue code between modules changes no entry of the registry.

``registry_fingerprint.json`` records, for every built-in layer and op, what a spec and
its build see of it: kind, docs group, NNX class, its config (class name, doc, JSON
Schema, validators) and the code of its function and shape check (bytecode, constants
and argument names: a change of logic or of a message shows; a move to another module,
or a helper renamed, does not). It was written before the catalogue was split into modules, so a split that
is a pure move keeps it; an entry changed on purpose is re-recorded with
``NNX_BUILD_UPDATE_FINGERPRINTS=1 python -m pytest tests/layers/test_registry_fingerprint.py``.
Entries added later are not in the file and do not fail it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import types
from pathlib import Path
from typing import Any

import pytest

from nnx_build import registry

SNAPSHOT = Path(__file__).with_name("registry_fingerprint.json")


def _code_digest(code: types.CodeType, h: Any) -> None:
    h.update(code.co_code)
    h.update(repr(code.co_varnames).encode())
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            _code_digest(c, h)
        else:
            h.update(_stable_repr(c).encode())


def _stable_repr(value: Any) -> str:
    return re.sub(r" at 0x[0-9a-f]+", "", repr(value))


def _fn_digest(fn: Any) -> str | None:
    if fn is None:
        return None
    h = hashlib.sha256()
    code = getattr(fn, "__code__", None)
    if code is None:  # a class, a builtin or a jitted function: its name says what it is
        name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
        h.update(f"{getattr(fn, '__module__', '')}.{name}".encode())
    else:
        _code_digest(code, h)
        for cell in fn.__closure__ or ():  # e.g. the field a made-up axis check reads
            value = cell.cell_contents
            h.update((_fn_digest(value) if callable(value) else _stable_repr(value)).encode())  # type: ignore[arg-type]
    return h.hexdigest()[:16]


def _config_digest(config: type) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(config.model_json_schema(), sort_keys=True).encode())  # type: ignore[attr-defined]
    for name in sorted(vars(config)):
        value = vars(config)[name]
        fn = getattr(value, "__func__", value)
        if isinstance(fn, types.FunctionType):
            h.update(name.encode())
            h.update((_fn_digest(fn) or "").encode())
    decorators = getattr(config, "__pydantic_decorators__", None)
    if decorators is not None:
        for kind in ("model_validators", "field_validators"):
            for name, dec in sorted(getattr(decorators, kind).items()):
                h.update(f"{kind}:{name}:{dec.info!r}:{_fn_digest(dec.func)}".encode())
    return h.hexdigest()[:16]


def fingerprint(entry: registry.Entry) -> dict[str, Any]:
    return {
        "kind": entry.kind,
        "group": entry.group,
        "nnx_cls": None if entry.nnx_cls is None else f"{entry.nnx_cls.__module__}.{entry.nnx_cls.__qualname__}",
        "config": entry.config.__name__,
        "doc": entry.doc,
        "config_digest": _config_digest(entry.config),
        "fn_digest": _fn_digest(entry.fn),
        "check_digest": _fn_digest(entry.check),
    }


def current() -> dict[str, dict[str, Any]]:
    return {e.name: fingerprint(e) for e in registry.entries() if ">" not in e.name}


def test_every_recorded_entry_is_unchanged() -> None:
    now = current()
    if os.environ.get("NNX_BUILD_UPDATE_FINGERPRINTS"):
        SNAPSHOT.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"wrote {SNAPSHOT.name}")
    recorded = json.loads(SNAPSHOT.read_text())
    missing = sorted(set(recorded) - set(now))
    assert not missing, f"entries no longer registered: {missing}"
    changed = {
        name: {k: (v, now[name][k]) for k, v in fp.items() if now[name][k] != v}
        for name, fp in recorded.items()
        if now[name] != fp
    }
    assert not changed, f"entries changed (recorded, now): {json.dumps(changed, indent=1)}"


def test_the_fingerprint_sees_a_changed_message_but_not_a_move() -> None:
    src = "def check(cfg, x):\n    return f'has axis {cfg.axis}, outside {len(x.shape)}'\n"
    a: dict[str, Any] = {}
    b: dict[str, Any] = {"__name__": "elsewhere"}
    exec(compile(src, "a.py", "exec"), a)
    exec(compile(src, "b.py", "exec"), b)  # the same code in another module
    c: dict[str, Any] = {}
    exec(compile(src.replace("outside", "beyond"), "a.py", "exec"), c)
    assert _fn_digest(a["check"]) == _fn_digest(b["check"])
    assert _fn_digest(a["check"]) != _fn_digest(c["check"])
