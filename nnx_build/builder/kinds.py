"""Variable kinds: NNX's own, and kinds a spec declares on top of them.

A declared kind is a real ``nnx.Variable`` subclass, so filters such as
``nnx.state(model, Frozen)`` and ``nnx.Optimizer(..., wrt=nnx.Param)`` see it; a
``Frozen`` kind based on ``Param`` is a ``Param`` for every filter that asks for one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flax import nnx

from ..errors import did_you_mean

__all__ = ["BUILTIN", "kind_class", "resolve", "resolve_reported", "unknown_kind_message"]

BUILTIN: dict[str, type[nnx.Variable]] = {
    "Param": nnx.Param,
    "BatchStat": nnx.BatchStat,
    "Cache": nnx.Cache,
    "Intermediate": nnx.Intermediate,
    "LoRAParam": nnx.LoRAParam,
    "Variable": nnx.Variable,
}

_DECLARED: dict[tuple[str, type], type[nnx.Variable]] = {}


def kind_class(name: str, base: type[nnx.Variable]) -> type[nnx.Variable]:
    """The class of declared kind ``name`` based on ``base`` (one class per pair)."""
    key = (name, base)
    if key not in _DECLARED:
        cls = type(name, (base,), {"__module__": "nnx_build.kinds", "__doc__": f"Spec-declared kind based on {base.__name__}."})
        _DECLARED[key] = cls
    return _DECLARED[key]


def resolve(declared: dict[str, str]) -> dict[str, type[nnx.Variable]]:
    """Maps every kind name (built-in and declared: name -> base name) to its class.

    Raises:
      KeyError: with the unknown base's name, or ``ValueError`` on a cycle.
    """
    out = dict(BUILTIN)
    pending = dict(declared)
    while pending:
        progressed = False
        for name, base in list(pending.items()):
            if base in out:
                out[name] = kind_class(name, out[base])
                del pending[name]
                progressed = True
        if not progressed:
            name, base = next(iter(pending.items()))
            if base in pending:
                raise ValueError(name)
            raise KeyError(name)
    return out


def resolve_reported(declared: dict[str, str], err: Callable[[str, str, tuple[Any, ...]], None]) -> dict[str, type[nnx.Variable]]:
    """:func:`resolve`, a problem reported through ``err(code, message, path)`` (then only the built-in kinds)."""
    try:
        return resolve(declared)
    except KeyError as e:
        name = e.args[0]
        base = declared[name]
        err(
            "unknown-kind",
            f"kind '{name}' is based on unknown kind '{base}'"
            f"{did_you_mean(base, [*declared, 'Param', 'BatchStat', 'Cache', 'Intermediate'])}",
            ("kinds", name, "base"),
        )
    except ValueError as e:
        err("cycle", f"kind '{e.args[0]}' is based on itself through other kinds", ("kinds", e.args[0]))
    return resolve({})


def unknown_kind_message(name: str, known: Any) -> str:
    return (
        f"unknown variable kind '{name}'{did_you_mean(name, known)}; "
        f"declare it under 'kinds:' (e.g. {name}: {{base: Param}}) or use Param, BatchStat, Cache, Intermediate"
    )
