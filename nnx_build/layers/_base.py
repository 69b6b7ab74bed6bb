"""Helpers to register NNX layers and pure ops with little code per entry."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..layer_table import CheckFn, register
from ..schemas.common import Config
from ..text import fmt_shape

__all__ = ["as_tuple", "axes_arg", "axis_check", "bad_axes", "feature_check", "nnx_layer", "op"]


def nnx_layer(
    config: type[Config],
    nnx_cls: type,
    *,
    name: str | None = None,
    check: CheckFn | None = None,
    group: str = "nn",
    build: Callable[..., Any] | None = None,
) -> None:
    """Registers an NNX layer whose constructor takes the config's fields."""
    takes_rngs = "rngs" in inspect.signature(nnx_cls.__init__).parameters

    def default_build(cfg: Config, *, rngs: Any) -> Any:
        args, kw = cfg.call_args()
        if takes_rngs:
            kw["rngs"] = rngs
        return nnx_cls(*args, **kw)

    tag = name or nnx_cls.__name__
    register(tag, config, build or default_build, kind="layer", check=check, nnx_cls=nnx_cls, group=group)


def op(config: type[Config], *, name: str | None = None, check: CheckFn | None = None, group: str = "ops"):
    """Decorator registering a pure function ``fn(cfg, *inputs, **named_inputs)``."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        tag = name or config.model_fields["type"].default
        register(tag, config, fn, kind="op", check=check, group=group)
        return fn

    return deco


def feature_check(field: str, axis: int = -1, what: str = "the last dimension") -> CheckFn:
    """A check that ``cfg.<field>`` equals the size of ``axis`` of the first input."""

    def check(cfg: Config, x: Any, *rest: Any, **kw: Any) -> str | None:
        want = getattr(cfg, field)
        if not hasattr(x, "shape") or len(x.shape) < (abs(axis) if axis < 0 else axis + 1):
            return f"expects an input with at least {abs(axis)} dimension(s), received shape {fmt_shape(getattr(x, 'shape', None))}"
        got = x.shape[axis]
        if isinstance(want, int) and isinstance(got, int) and got != want:
            return f"expects {field}={want} to match {what} of its input, received shape {fmt_shape(x.shape)} ({field} would be {got}); set {field}: {got}"
        return None

    return check


def as_tuple(v: int | list[int] | tuple[int, ...]) -> tuple[int, ...]:
    """``v`` as a tuple: a list becomes a tuple, an integer a 1-tuple."""
    return tuple(v) if isinstance(v, list | tuple) else (v,)


def axes_arg(axis: int | list[int] | None) -> int | tuple[int, ...] | None:
    """An ``axis`` field as jnp takes it: a list becomes a tuple."""
    return tuple(axis) if isinstance(axis, list) else axis


def bad_axes(axis: int | list[int] | None, ndim: int, shape: Any, extra: int = 0) -> str | None:
    """A message when an axis is outside ``[-ndim - extra, ndim + extra)``, else None."""
    if axis is None:
        return None
    n = ndim + extra
    for a in [axis] if isinstance(axis, int) else axis:
        if not -n <= a < n:
            return f"has axis {a}, outside the {n} dimension(s) of its input {fmt_shape(shape)}"
    return None


def axis_check(field: str = "axis", extra: int = 0) -> CheckFn:
    """A check that ``cfg.<field>`` names dimensions of the first input."""

    def check(cfg: Config, x: Any, *rest: Any, **kw: Any) -> str | None:
        return bad_axes(getattr(cfg, field), len(x.shape), x.shape, extra)

    return check
