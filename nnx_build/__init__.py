"""nnx-build: declarative specs for Flax NNX models.

The public API is listed here explicitly; names are imported on first use, so
``import nnx_build`` and ``nnx-build --help`` do not pay for importing JAX and Flax.

Example:
  >>> import nnx_build
  >>> model = nnx_build.build("specs/seed/model.yaml")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> (module, attribute)
_EXPORTS: dict[str, tuple[str, str]] = {
    "BuiltModule": ("nnx_build.builder", "BuiltModule"),
    "Report": ("nnx_build.builder", "Report"),
    "build": ("nnx_build.builder", "build"),
    "check": ("nnx_build.builder", "check"),
    "compile": ("nnx_build.builder", "compile"),
    "Location": ("nnx_build.errors", "Location"),
    "NnxBuildError": ("nnx_build.errors", "NnxBuildError"),
    "OutOfMemoryError": ("nnx_build.errors", "OutOfMemoryError"),
    "SpecError": ("nnx_build.errors", "SpecError"),
    "SpecErrors": ("nnx_build.errors", "SpecErrors"),
    "export": ("nnx_build.exporters", "export"),
    "FastForward": ("nnx_build.fastpath", "FastForward"),
    "fast_forward": ("nnx_build.fastpath", "fast_forward"),
    "Options": ("nnx_build.pipeline", "Options"),
    "register": ("nnx_build.registry", "register"),
    "Spec": ("nnx_build.schemas.spec", "Spec"),
    "dump_spec": ("nnx_build.spec_io", "dump_spec"),
    "load_spec": ("nnx_build.spec_io", "load_spec"),
    "WeightsError": ("nnx_build.weights", "WeightsError"),
    "load_weights": ("nnx_build.builder", "load_weights"),
    "save_weights": ("nnx_build.weights", "save_weights"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'nnx_build' has no attribute {name!r}")
    module, attr = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:
    from .builder import BuiltModule as BuiltModule
    from .builder import Report as Report
    from .builder import build as build
    from .builder import check as check
    from .builder import compile as compile  # noqa: A004
    from .builder import load_weights as load_weights
    from .errors import Location as Location
    from .errors import NnxBuildError as NnxBuildError
    from .errors import OutOfMemoryError as OutOfMemoryError
    from .errors import SpecError as SpecError
    from .errors import SpecErrors as SpecErrors
    from .exporters import export as export
    from .fastpath import FastForward as FastForward
    from .fastpath import fast_forward as fast_forward
    from .pipeline import Options as Options
    from .registry import register as register
    from .schemas.spec import Spec as Spec
    from .spec_io import dump_spec as dump_spec
    from .spec_io import load_spec as load_spec
    from .weights import WeightsError as WeightsError
    from .weights import save_weights as save_weights
