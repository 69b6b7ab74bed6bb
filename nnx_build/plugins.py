"""Plugins: code that registers layers, imported only when the user asks for it.

A spec never causes an import: its ``type:`` names are looked up in the registry and
nothing else. Code that adds layers (``nnx_build.register("mypkg>MyLayer", ...)``)
is loaded in exactly two ways, both opt-in:

- ``--plugin MODULE`` (repeatable) on every command that builds a spec, or
  ``load_plugins(["MODULE"])`` (``Options(plugins=...)`` for :mod:`nnx_build.pipeline`)
  in Python: imports MODULE;
- ``--plugins-from-entry-points`` (or ``NNX_BUILD_ENTRY_POINTS=1``), or
  ``load_plugins(entry_points=True)``: loads every installed entry point of the group
  ``nnx_build.plugins``. An entry point names a module (``mypkg.nnx_layers``) or a
  function (``mypkg.nnx_layers:register_all``), which is then called with no arguments.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterable

from .errors import NnxBuildError

__all__ = ["ENTRY_POINT_GROUP", "PluginError", "entry_points_requested", "load_plugins"]

ENTRY_POINT_GROUP = "nnx_build.plugins"
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class PluginError(NnxBuildError):
    """A plugin the user named cannot be loaded."""


def entry_points_requested() -> bool:
    """Whether ``NNX_BUILD_ENTRY_POINTS`` asks for entry-point plugins (1, true, yes)."""
    return os.environ.get("NNX_BUILD_ENTRY_POINTS", "").strip().lower() in ("1", "true", "yes", "on")


def load_plugins(modules: Iterable[str] = (), *, entry_points: bool = False) -> list[str]:
    """Imports the plugin modules the user named and, if asked, the installed entry points.

    Returns:
      the names loaded, in order.
    Raises:
      PluginError: a module that does not exist or fails while importing.
    """
    loaded: list[str] = []
    for name in modules:
        if not _MODULE.match(name):
            raise PluginError(f"--plugin takes a module name such as 'mypkg.layers', received {name!r}")
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise PluginError(f"cannot import plugin '{name}': {e}") from e
        except Exception as e:
            raise PluginError(f"plugin '{name}' failed while importing: {type(e).__name__}: {e}") from e
        loaded.append(name)
    if entry_points:
        from importlib.metadata import entry_points as _eps

        for ep in sorted(_eps(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            try:
                obj = ep.load()
                if callable(obj) and not isinstance(obj, type(importlib)):
                    obj()
            except Exception as e:
                raise PluginError(
                    f"entry point '{ep.name} = {ep.value}' ({ENTRY_POINT_GROUP}) failed: {type(e).__name__}: {e}"
                ) from e
            loaded.append(ep.value)
    return loaded
