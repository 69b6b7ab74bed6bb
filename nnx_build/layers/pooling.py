"""Pooling ops: windowed max/avg/min pooling and global pooling.

Inputs are channels-last, ``(batch, *spatial, features)``, as ``flax.nnx`` pools expect.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import jax.numpy as jnp
from flax import nnx
from pydantic import AfterValidator, Field

from ..schemas.common import Config, Convert
from ..text import fmt_shape
from ._base import op

__all__ = ["AvgPoolConfig", "GlobalAvgPoolConfig", "GlobalMaxPoolConfig", "MaxPoolConfig", "MinPoolConfig"]


def _to_pool_padding(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(tuple(p) for p in value)
    return value


def _check_pool_padding(value: str | list[list[int]]) -> str | list[list[int]]:
    if isinstance(value, str) and value not in ("SAME", "VALID"):
        raise ValueError(f"padding must be 'SAME', 'VALID' or a list of [low, high] pairs, received {value!r}")
    if isinstance(value, list) and any(len(p) != 2 or min(p) < 0 for p in value):
        raise ValueError(f"padding pairs must be [low, high] with non-negative entries, received {value!r}")
    return value


PoolPadding = Annotated[
    str | list[list[int]],
    AfterValidator(_check_pool_padding),
    Convert(_to_pool_padding),
    Field(description="'VALID', 'SAME', or one [low, high] pair per spatial dim"),
]


class MaxPoolConfig(Config):
    """``nnx.max_pool``: ``(batch, *spatial, features)`` to ``(batch, *pooled, features)``.

    ``window_shape`` has one entry per spatial dim; ``strides`` defaults to 1 per dim
    (pass the window for non-overlapping pooling). With ``padding: VALID`` each pooled
    dim is ``(n - window) // stride + 1``; with ``SAME`` it is ``ceil(n / stride)``.
    """

    type: Literal["max_pool"] = "max_pool"
    window_shape: list[int] = Field(min_length=1)
    strides: list[int] | None = None
    padding: PoolPadding = "VALID"


class AvgPoolConfig(MaxPoolConfig):
    """``nnx.avg_pool``: ``(batch, *spatial, features)`` to ``(batch, *pooled, features)``.

    Fields as for ``max_pool``; ``count_include_pad`` says whether padded zeros count in
    the average at the borders (``padding: SAME`` or explicit pairs).
    """

    type: Literal["avg_pool"] = "avg_pool"  # type: ignore[assignment]
    count_include_pad: bool = True


class MinPoolConfig(MaxPoolConfig):
    """``nnx.min_pool``: ``(batch, *spatial, features)`` to ``(batch, *pooled, features)``; fields as for ``max_pool``."""

    type: Literal["min_pool"] = "min_pool"  # type: ignore[assignment]


def _check_pool(cfg: MaxPoolConfig, x: Any) -> str | None:
    nw = len(cfg.window_shape)
    shape = x.shape
    if len(shape) < nw + 2:
        return (
            f"has a {nw}-d window_shape {cfg.window_shape}, which needs an input (batch, {nw} spatial dim(s), features); "
            f"received {fmt_shape(shape)}"
        )
    for field in ("strides",):
        v = getattr(cfg, field)
        if v is not None and len(v) != nw:
            return f"needs {field} with one entry per window dim ({nw}), received {v}"
    if isinstance(cfg.padding, list) and len(cfg.padding) != nw:
        return f"needs one [low, high] padding pair per window dim ({nw}), received {cfg.padding}"
    if any(w < 1 for w in cfg.window_shape) or any(s < 1 for s in cfg.strides or []):
        return f"needs positive window_shape and strides, received {cfg.window_shape} and {cfg.strides}"
    spatial = shape[-nw - 1 : -1]
    pads = cfg.padding if isinstance(cfg.padding, list) else [[0, 0]] * nw
    if cfg.padding != "SAME":
        for i, (n, w, (lo, hi)) in enumerate(zip(spatial, cfg.window_shape, pads, strict=True)):
            if isinstance(n, int) and n + lo + hi < w:
                return f"has window {w} larger than spatial dim {i} of size {n} (plus padding) of its input {fmt_shape(shape)}"
    return None


def _pool(fn: Any):
    def apply(cfg: MaxPoolConfig, x: Any) -> Any:
        return fn(x, **cfg.kwargs())

    apply.__name__ = fn.__name__
    return apply


op(MaxPoolConfig, check=_check_pool, group="pooling")(_pool(nnx.max_pool))
op(AvgPoolConfig, check=_check_pool, group="pooling")(_pool(nnx.avg_pool))
op(MinPoolConfig, check=_check_pool, group="pooling")(_pool(nnx.min_pool))


class GlobalAvgPoolConfig(Config):
    """Mean over the spatial dims (all but the first and last): ``(batch, *spatial, features)`` to ``(batch, features)``.

    With ``keepdims`` the spatial dims are kept with size 1.
    """

    type: Literal["global_avg_pool"] = "global_avg_pool"
    keepdims: bool = False


class GlobalMaxPoolConfig(Config):
    """Max over the spatial dims (all but the first and last): ``(batch, *spatial, features)`` to ``(batch, features)``.

    With ``keepdims`` the spatial dims are kept with size 1.
    """

    type: Literal["global_max_pool"] = "global_max_pool"
    keepdims: bool = False


def _check_global(cfg: Config, x: Any) -> str | None:
    if len(x.shape) < 3:
        return f"needs an input (batch, *spatial, features) with at least one spatial dim, received {fmt_shape(x.shape)}"
    return None


@op(GlobalAvgPoolConfig, check=_check_global, group="pooling")
def global_avg_pool(cfg: GlobalAvgPoolConfig, x: Any) -> Any:
    return jnp.mean(x, axis=tuple(range(1, x.ndim - 1)), keepdims=cfg.keepdims)


@op(GlobalMaxPoolConfig, check=_check_global, group="pooling")
def global_max_pool(cfg: GlobalMaxPoolConfig, x: Any) -> Any:
    return jnp.max(x, axis=tuple(range(1, x.ndim - 1)), keepdims=cfg.keepdims)
