"""The error of weight files: one line naming the file and the variable, exit code 2."""

from __future__ import annotations

from ..errors import NnxBuildError

__all__ = ["WeightsError"]


class WeightsError(NnxBuildError):
    """A weights file is unreadable or does not fit the model (names the variable and shapes)."""
