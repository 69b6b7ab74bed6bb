"""nnx-build: declarative specs for Flax NNX models.

Example:
  >>> import nnx_build
  >>> model = nnx_build.build("specs/seed/model.yaml")  # doctest: +SKIP
"""

from .builder import BuiltModule as BuiltModule
from .builder import Report as Report
from .builder import build as build
from .builder import check as check
from .builder import compile as compile  # noqa: A004
from .errors import Location as Location
from .errors import NnxBuildError as NnxBuildError
from .errors import SpecError as SpecError
from .errors import SpecErrors as SpecErrors
from .registry import register as register
from .schemas.spec import Spec as Spec
from .spec_io import dump_spec as dump_spec
from .spec_io import load_spec as load_spec

__version__ = "0.1.0"
