"""Tensor ops: arithmetic, shape manipulation, reductions.

Shapes given to ops exclude the leading ``batch_dims`` dimensions (1 by default), as
Keras' ``Reshape`` does, so a spec stays polymorphic in its batch size.
"""

from __future__ import annotations

import math
from functools import reduce
from typing import Any, Literal

import jax.numpy as jnp
from pydantic import Field

from ..schemas.common import Config
from ._base import op


class AddConfig(Config):
    """Elementwise sum of two or more inputs (residual add), with broadcasting."""

    type: Literal["add"] = "add"


@op(AddConfig)
def add(cfg: AddConfig, *xs: Any) -> Any:
    return reduce(lambda a, b: a + b, xs)


class MulConfig(Config):
    """Elementwise product of two or more inputs, with broadcasting."""

    type: Literal["mul"] = "mul"


@op(MulConfig)
def mul(cfg: MulConfig, *xs: Any) -> Any:
    return reduce(lambda a, b: a * b, xs)


class ConcatConfig(Config):
    """Concatenates its inputs along ``axis``."""

    type: Literal["concat"] = "concat"
    axis: int = -1


@op(ConcatConfig)
def concat(cfg: ConcatConfig, *xs: Any) -> Any:
    return jnp.concatenate(xs, axis=cfg.axis)


class ReshapeConfig(Config):
    """Reshapes the dimensions after the first ``batch_dims`` to ``shape`` (one entry may be -1)."""

    type: Literal["reshape"] = "reshape"
    shape: list[int]
    batch_dims: int = Field(default=1, ge=0)


def _check_reshape(cfg: ReshapeConfig, x: Any) -> str | None:
    inner = x.shape[cfg.batch_dims :]
    if not all(isinstance(d, int) for d in inner):
        return None
    size = math.prod(inner)
    if cfg.shape.count(-1) > 1:
        return f"shape {cfg.shape} has more than one -1"
    known = math.prod(d for d in cfg.shape if d != -1)
    if (-1 in cfg.shape and (known == 0 or size % known)) or (-1 not in cfg.shape and known != size):
        return f"cannot reshape {tuple(inner)} ({size} values after the batch dims) to {cfg.shape}"
    return None


@op(ReshapeConfig, check=_check_reshape)
def reshape(cfg: ReshapeConfig, x: Any) -> Any:
    return jnp.reshape(x, (*x.shape[: cfg.batch_dims], *cfg.shape))


class FlattenConfig(Config):
    """Flattens every dimension after the first ``batch_dims`` into one."""

    type: Literal["flatten"] = "flatten"
    batch_dims: int = Field(default=1, ge=0)


@op(FlattenConfig)
def flatten(cfg: FlattenConfig, x: Any) -> Any:
    return jnp.reshape(x, (*x.shape[: cfg.batch_dims], -1))


class MatmulConfig(Config):
    """Matrix product of two inputs (``jnp.matmul``), with batch broadcasting."""

    type: Literal["matmul"] = "matmul"


@op(MatmulConfig)
def matmul(cfg: MatmulConfig, a: Any, b: Any) -> Any:
    return jnp.matmul(a, b)


class MeanConfig(Config):
    """Mean over ``axis`` (global average pooling with ``axis: [1, 2]``)."""

    type: Literal["mean"] = "mean"
    axis: int | list[int] | None = None
    keepdims: bool = False


@op(MeanConfig)
def mean(cfg: MeanConfig, x: Any) -> Any:
    axis = tuple(cfg.axis) if isinstance(cfg.axis, list) else cfg.axis
    return jnp.mean(x, axis=axis, keepdims=cfg.keepdims)
