"""Moved to :mod:`nnx_build.weights`; these names are re-exported from there."""

from __future__ import annotations

from ..weights import FORMATS, WeightFormat, apply_weights, load_weights, read_weights, register_format, save_weights

__all__ = ["FORMATS", "WeightFormat", "apply_weights", "load_weights", "read_weights", "register_format", "save_weights"]
