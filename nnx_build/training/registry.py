"""Optimizers, schedules and gradient clipping by name.

They are optax functions looked up by name in the fixed lists of
:mod:`nnx_build.schemas.train`; their keyword arguments are checked against the real
signatures. Losses and metrics are the tables of :mod:`nnx_build.training.objectives`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import optax

from ..errors import NnxBuildError, did_you_mean
from ..schemas.train import CLIPS, OPTIMIZERS, SCHEDULES

__all__ = [
    "TrainSetupError",
    "check_args",
    "optax_fn",
]


class TrainSetupError(NnxBuildError):
    """A name or argument of the train section that optax or nnx-build does not know."""


def optax_fn(kind: str, name: str) -> Callable[..., Any]:
    """The optax function of an optimizer, schedule or clipping transformation by name."""
    names = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "gradient clipping": CLIPS}[kind]
    if name not in names or not hasattr(optax, name):
        raise TrainSetupError(f"unknown {kind} '{name}'{did_you_mean(name, names)}; expected one of {', '.join(names)}")
    return getattr(optax, name)


def check_args(fn: Callable[..., Any], args: dict[str, Any], what: str) -> list[str]:
    """Problems with calling ``fn(**args)``: unknown and missing keyword arguments."""
    sig = inspect.signature(fn)
    params = {n: p for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    problems = []
    for k in args:
        if k not in params and not takes_kwargs:
            problems.append(f"{what} has no argument '{k}'{did_you_mean(k, params)}; its arguments: {', '.join(params)}")
    for n, p in params.items():
        if p.default is inspect.Parameter.empty and n not in args:
            problems.append(f"{what} needs argument '{n}'")
    return problems
