"""The registry of layers and ops: one dict keyed by the spec's ``type`` tag.

``register`` works as a function and as a decorator, refuses silent overwrites and
says how to overwrite. Third-party entries are namespaced: ``mypkg>MyLayer``.

Example:
  >>> from nnx_build.schemas.common import Config
  >>> class Double(Config):
  ...     type: Literal["demo>double"] = "demo>double"
  >>> @register("demo>double", Double, kind="op")
  ... def double(cfg, x):
  ...     return 2 * x
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .errors import did_you_mean
from .schemas.common import Config

__all__ = ["Entry", "RegistryError", "entries", "get", "names", "register"]

Kind = Literal["layer", "op", "call"]

#: A shape check: (config, input avals) -> an error message, or None when fine.
CheckFn = Callable[..., str | None]


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


_REGISTRY: dict[str, Entry] = {}
_VERSION = [0]


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

    _ensure_loaded()  # the built-in catalogue first, even when a plugin registers before any lookup

    def add(f: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY and not overwrite:
            raise RegistryError(
                f"'{name}' is already registered ({_REGISTRY[name].fn!r}); "
                "pass overwrite=True to replace it, or use a namespaced name such as 'mypkg>{name}'"
            )
        _REGISTRY[name] = Entry(name, config, kind, f, check, nnx_cls, group)
        _VERSION[0] += 1
        return f

    return add(fn) if fn is not None else add


_LOADED = [False]


def _ensure_loaded() -> None:
    if _LOADED[0]:
        return
    _LOADED[0] = True  # set first: the catalogue's own register() calls come back here
    try:
        from . import layers  # noqa: F401  (registers the built-in catalogue)
    except BaseException:
        _LOADED[0] = False
        raise


def get(name: str) -> Entry | None:
    _ensure_loaded()
    return _REGISTRY.get(name)


def names() -> Sequence[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def entries() -> list[Entry]:
    _ensure_loaded()
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]


def unknown_type_message(name: str, extra: Sequence[str] = ()) -> str:
    choices = [*names(), *extra]
    return f"unknown layer or op type '{name}'{did_you_mean(name, choices)}; see 'nnx-build schema' or docs/spec-reference.md for the catalogue"


def version() -> int:
    return _VERSION[0]
