"""The registry of layers and ops: one table keyed by the spec's ``type`` tag.

``register`` works as a function and as a decorator, refuses silent overwrites and
says how to overwrite. Third-party entries are namespaced: ``mypkg>MyLayer``.
Lookups here load the built-in catalogue first (``nnx_build.layers``, which
registers itself in :mod:`nnx_build.layer_table`).

Example:
  >>> from nnx_build.schemas.common import Config
  >>> class Double(Config):
  ...     type: Literal["demo>double"] = "demo>double"
  >>> @register("demo>double", Double, kind="op")
  ... def double(cfg, x):
  ...     return 2 * x
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import did_you_mean
from .layer_table import CheckFn, Entry, Kind, Problem, RegistryError, lookup, register, registered

__all__ = ["CheckFn", "Entry", "Kind", "Problem", "RegistryError", "entries", "get", "names", "register"]


def _ensure_loaded() -> None:
    from . import layers  # noqa: F401  (registers the built-in catalogue)


def get(name: str) -> Entry | None:
    _ensure_loaded()
    return lookup(name)


def names() -> Sequence[str]:
    _ensure_loaded()
    return registered()


def entries() -> list[Entry]:
    _ensure_loaded()
    return [e for e in map(lookup, registered()) if e is not None]


def unknown_type_message(name: str, extra: Sequence[str] = ()) -> str:
    choices = [*names(), *extra]
    return f"unknown layer or op type '{name}'{did_you_mean(name, choices)}; see 'nnx-build schema' or docs/spec-reference.md for the catalogue"
