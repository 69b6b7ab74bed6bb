"""Variable kinds: NNX's own, and kinds a spec declares on top of them.

A declared kind is a real ``nnx.Variable`` subclass, so filters such as
``nnx.state(model, Frozen)`` and ``nnx.Optimizer(..., wrt=nnx.Param)`` see it; a
``Frozen`` kind based on ``Param`` is a ``Param`` for every filter that asks for one.
"""

from __future__ import annotations

from flax import nnx

__all__ = ["BUILTIN", "kind_class"]

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
