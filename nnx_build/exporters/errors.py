"""Errors of export and verification: one line each in the CLI, exit code 2."""

from __future__ import annotations

from ..errors import NnxBuildError
from ..weights.errors import WeightsError

__all__ = ["ConversionError", "ExportError", "OutputExistsError", "VerificationError", "WeightsError"]


class ExportError(NnxBuildError):
    """An export could not be written (unwritable folder, unknown target, ...)."""


class OutputExistsError(ExportError):
    """The output folder exists and ``force`` was not given."""


class ConversionError(ExportError):
    """A converter (jax.export, jax2tf, jax2onnx) refused the model."""


class VerificationError(ExportError):
    """A reloaded artifact disagrees with JAX, or could not be reloaded."""
