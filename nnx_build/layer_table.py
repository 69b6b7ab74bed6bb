"""The table of layer and op entries that :func:`register` fills.

It imports no layer: the built-in catalogue (``nnx_build.layers``) registers itself
here, and :mod:`nnx_build.registry`, the public face, loads that catalogue before
any lookup. Third-party entries are namespaced: ``mypkg>MyLayer``.

Registering: see the example in :mod:`nnx_build.registry`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .schemas.common import Config

__all__ = ["CheckFn", "Entry", "Kind", "Problem", "RegistryError", "lookup", "register", "registered"]

Kind = Literal["layer", "op", "call"]

#: A shape check: (config, input avals) -> an error message (a ``str`` or a
#: :class:`Problem` naming the field at fault), or None when fine.
CheckFn = Callable[..., str | None]


class Problem(str):
    """A check's error message that names the step field at fault (the error points at it).

    Example: ``return Problem("has an integer kernel_size ...", field="kernel_size")``.
    """

    field: str | None

    def __new__(cls, message: str, field: str | None = None) -> Problem:
        self = super().__new__(cls, message)
        self.field = field
        return self


@dataclass(frozen=True)
class Entry:
    """How one ``type`` tag is validated and built.

    Attributes:
      name: the tag written as ``type:`` in a spec.
      config: the pydantic model of the step's fields.
      kind: ``layer`` (an ``nnx.Module`` kept as an attribute), ``op`` (a pure function),
        or ``call`` (calls an existing module again).
      fn: for a layer, ``fn(config, rngs=...) -> nnx.Module``; for an op,
        ``fn(config, *inputs, **named_inputs) -> output``.
      check: optional shape check run on the abstract build, before the call.
      nnx_cls: the NNX class a layer builds, if any (docs and tests use it).
      group: catalogue section for the docs.
    """

    name: str
    config: type[Config]
    kind: Kind
    fn: Callable[..., Any]
    check: CheckFn | None = None
    nnx_cls: type | None = None
    group: str = "misc"

    @property
    def doc(self) -> str:
        return (self.config.__doc__ or "").strip()


class RegistryError(ValueError):
    pass


_TABLE: dict[str, Entry] = {}


def register(
    name: str,
    config: type[Config],
    fn: Callable[..., Any] | None = None,
    *,
    kind: Kind = "layer",
    check: CheckFn | None = None,
    nnx_cls: type | None = None,
    group: str = "misc",
    overwrite: bool = False,
) -> Any:
    """Registers ``name``; used as ``register(name, Config, fn)`` or as a decorator."""

    def add(f: Callable[..., Any]) -> Callable[..., Any]:
        if name in _TABLE and not overwrite:
            raise RegistryError(
                f"'{name}' is already registered ({_TABLE[name].fn!r}); "
                "pass overwrite=True to replace it, or use a namespaced name such as 'mypkg>{name}'"
            )
        _TABLE[name] = Entry(name, config, kind, f, check, nnx_cls, group)
        return f

    return add(fn) if fn is not None else add


def lookup(name: str) -> Entry | None:
    """The entry registered as ``name`` so far (the catalogue may not be loaded yet)."""
    return _TABLE.get(name)


def registered() -> list[str]:
    """Every name registered so far, sorted."""
    return sorted(_TABLE)
