"""The export targets: one line per target; the CLI, verification, bench and the manifest read it.

Adding a target: a module exposing one :class:`~.target.Target` as ``TARGET``, and one
line below (or ``TARGETS[name] = TARGET`` from a plugin).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import did_you_mean
from . import onnx, savedmodel, stablehlo
from .errors import ExportError
from .target import Target

__all__ = ["TARGETS", "parse_targets"]

#: name -> target, in the order exports write and report them
TARGETS: dict[str, Target] = {
    stablehlo.TARGET.name: stablehlo.TARGET,
    savedmodel.TARGET.name: savedmodel.TARGET,
    onnx.TARGET.name: onnx.TARGET,
}


def parse_targets(value: str | Sequence[str] | None) -> tuple[Target, ...]:
    """``"stablehlo,onnx"`` (or a sequence of names) as targets; ``None`` means every target."""
    if value is None:
        return tuple(TARGETS.values())
    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    for v in names:
        if v not in TARGETS:
            raise ExportError(f"unknown export target '{v}'{did_you_mean(v, list(TARGETS))}; choose from {', '.join(TARGETS)}")
    if not names:
        raise ExportError(f"no export target given; choose from {', '.join(TARGETS)}")
    return tuple(TARGETS[n] for n in dict.fromkeys(names))
