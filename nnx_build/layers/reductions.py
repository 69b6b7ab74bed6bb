"""Reductions over axes, as ``jax.numpy`` has them: ``mean``, ``sum``, ``max`` ... ``all``,
``argmax`` / ``argmin``, ``cumsum`` and ``l2_normalize``."""

from __future__ import annotations

from typing import Any, Literal

import jax.numpy as jnp
from pydantic import create_model

from ..schemas.common import Config
from ._base import axes_arg, axis_check, op


class MeanConfig(Config):
    """Mean over ``axis`` (global average pooling with ``axis: [1, 2]``)."""

    type: Literal["mean"] = "mean"
    axis: int | list[int] | None = None
    keepdims: bool = False


@op(MeanConfig, check=axis_check())
def mean(cfg: MeanConfig, x: Any) -> Any:
    axis = tuple(cfg.axis) if isinstance(cfg.axis, list) else cfg.axis
    return jnp.mean(x, axis=axis, keepdims=cfg.keepdims)


_REDUCTIONS = ("sum", "max", "min", "prod", "var", "std", "any", "all")


def _reduce_fn(name: str):
    fn = getattr(jnp, name)

    def apply(cfg: Config, x: Any) -> Any:
        return fn(x, axis=axes_arg(cfg.axis), keepdims=cfg.keepdims)  # type: ignore[attr-defined]

    apply.__name__ = name
    return apply


for _name in _REDUCTIONS:
    _model = create_model(
        f"{_name.title()}Config",
        __base__=Config,
        __doc__=(
            f"``jnp.{_name}`` over ``axis`` (every axis when omitted, the batch too): input ``(..., n, ...)``; "
            "the reduced axes are dropped, or kept with size 1 when ``keepdims``."
        ),
        type=(Literal[_name], _name),  # type: ignore[valid-type]
        axis=(int | list[int] | None, None),
        keepdims=(bool, False),
    )
    op(_model, check=axis_check())(_reduce_fn(_name))


class _ArgReduceConfig(Config):
    axis: int = -1
    keepdims: bool = False


class ArgmaxConfig(_ArgReduceConfig):
    """Index of the largest value along ``axis``: drops that axis (kept with size 1 when ``keepdims``); int32."""

    type: Literal["argmax"] = "argmax"


class ArgminConfig(_ArgReduceConfig):
    """Index of the smallest value along ``axis``: drops that axis (kept with size 1 when ``keepdims``); int32."""

    type: Literal["argmin"] = "argmin"


@op(ArgmaxConfig, check=axis_check())
def argmax(cfg: ArgmaxConfig, x: Any) -> Any:
    return jnp.argmax(x, axis=cfg.axis, keepdims=cfg.keepdims)


@op(ArgminConfig, check=axis_check())
def argmin(cfg: ArgminConfig, x: Any) -> Any:
    return jnp.argmin(x, axis=cfg.axis, keepdims=cfg.keepdims)


class CumsumConfig(Config):
    """Cumulative sum along ``axis``; shape unchanged."""

    type: Literal["cumsum"] = "cumsum"
    axis: int = -1
    reverse: bool = False


@op(CumsumConfig, check=axis_check())
def cumsum(cfg: CumsumConfig, x: Any) -> Any:
    import jax

    return jax.lax.cumsum(x, axis=cfg.axis % x.ndim, reverse=cfg.reverse)


class L2NormalizeConfig(Config):
    """Divides by the L2 norm along ``axis``: ``x / sqrt(max(sum(x**2), epsilon))``; shape unchanged."""

    type: Literal["l2_normalize"] = "l2_normalize"
    axis: int | list[int] = -1
    epsilon: float = 1e-12


@op(L2NormalizeConfig, check=axis_check())
def l2_normalize(cfg: L2NormalizeConfig, x: Any) -> Any:
    import jax

    sq = jnp.sum(jnp.square(x), axis=axes_arg(cfg.axis), keepdims=True)
    return x * jax.lax.rsqrt(jnp.maximum(sq, cfg.epsilon))
