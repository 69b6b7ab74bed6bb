"""Indexing ops: ``slice``, ``index``, gathers (``take``, ``take_along_axis``) and ``positions``."""

from __future__ import annotations

from typing import Any, Literal

import jax.numpy as jnp
from pydantic import model_validator

from ..schemas.common import Config, DType, to_dtype
from ..text import fmt_shape
from ._base import axis_check, bad_axes, op


class SliceConfig(Config):
    """Numpy-style slice ``start:stop:step`` of chosen axes; other axes are kept whole.

    ``{type: slice, axis: 1, start: 0, stop: 1}`` keeps the first token of a
    ``(batch, T, d)`` input, giving ``(batch, 1, d)``. Several axes: ``axis: [1, 2]``
    with lists ``start: [0, 1]``, ``stop: [4, null]`` (one entry per axis).
    """

    type: Literal["slice"] = "slice"
    axis: int | list[int]
    start: int | None | list[int | None] = None
    stop: int | None | list[int | None] = None
    step: int | None | list[int | None] = None

    @model_validator(mode="after")
    def _same_lengths(self) -> SliceConfig:
        many = isinstance(self.axis, list)
        for name in ("start", "stop", "step"):
            v = getattr(self, name)
            if v is None:
                continue
            if many and (not isinstance(v, list) or len(v) != len(self.axis)):  # type: ignore[arg-type]
                raise ValueError(f"with axis a list of {len(self.axis)} axes, {name} must be a list of as many entries, received {v!r}")  # type: ignore[arg-type]
            if not many and isinstance(v, list):
                raise ValueError(f"with a single axis, {name} must be an integer, received {v!r}")
            steps = v if isinstance(v, list) else [v]
            if name == "step" and 0 in steps:
                raise ValueError("step must not be 0")
        return self

    def slices(self) -> list[tuple[int, slice]]:
        axes = self.axis if isinstance(self.axis, list) else [self.axis]

        def at(v: Any, i: int) -> Any:
            return v[i] if isinstance(v, list) else v

        return [(a, slice(at(self.start, i), at(self.stop, i), at(self.step, i))) for i, a in enumerate(axes)]


def _index_tuple(ndim: int, parts: list[tuple[int, Any]]) -> tuple[Any, ...]:
    idx: list[Any] = [slice(None)] * ndim
    for a, s in parts:
        idx[a % ndim] = s
    return tuple(idx)


@op(SliceConfig, check=axis_check())
def slice_(cfg: SliceConfig, x: Any) -> Any:
    return x[_index_tuple(x.ndim, cfg.slices())]


class IndexConfig(Config):
    """Takes position ``index`` along ``axis`` and drops that axis: ``(batch, T, d)`` with ``axis: 1, index: 0`` gives ``(batch, d)``."""

    type: Literal["index"] = "index"
    axis: int
    index: int


def _check_index(cfg: IndexConfig, x: Any) -> str | None:
    bad = bad_axes(cfg.axis, len(x.shape), x.shape)
    if bad:
        return bad
    d = x.shape[cfg.axis]
    if isinstance(d, int) and not -d <= cfg.index < d:
        return f"has index {cfg.index}, outside axis {cfg.axis} of size {d} of its input {fmt_shape(x.shape)}"
    return None


@op(IndexConfig, check=_check_index)
def index(cfg: IndexConfig, x: Any) -> Any:
    return x[_index_tuple(x.ndim, [(cfg.axis, cfg.index)])]


class TakeConfig(Config):
    """Gathers entries of the first input at the integer second input along ``axis`` (``jnp.take``).

    A table ``(V, d)`` and ids ``(batch, T)`` with ``axis: 0`` give ``(batch, T, d)``: the
    output shape is the first input's with ``axis`` replaced by the ids' shape.
    ``mode`` says what out-of-range ids do: ``fill`` (NaN, jnp's default), ``clip``.
    """

    type: Literal["take"] = "take"
    axis: int = 0
    mode: Literal["fill", "clip", "promise_in_bounds"] | None = None


def _check_take(cfg: TakeConfig, x: Any, indices: Any) -> str | None:
    bad = bad_axes(cfg.axis, len(x.shape), x.shape)
    if bad:
        return bad
    if not jnp.issubdtype(indices.dtype, jnp.integer):
        return f"needs integer indices as its second input, received dtype {indices.dtype}"
    return None


@op(TakeConfig, check=_check_take)
def take(cfg: TakeConfig, x: Any, indices: Any) -> Any:
    return jnp.take(x, indices, axis=cfg.axis, mode=cfg.mode)


class TakeAlongAxisConfig(Config):
    """Gathers along ``axis`` with an index array of the input's rank (``jnp.take_along_axis``): output has the indices' shape."""

    type: Literal["take_along_axis"] = "take_along_axis"
    axis: int = -1
    mode: Literal["fill", "clip", "promise_in_bounds"] | None = None


def _check_take_along(cfg: TakeAlongAxisConfig, x: Any, indices: Any) -> str | None:
    bad = bad_axes(cfg.axis, len(x.shape), x.shape)
    if bad:
        return bad
    if len(indices.shape) != len(x.shape):
        return f"needs indices of the same rank as its input, received {fmt_shape(x.shape)} and indices {fmt_shape(indices.shape)}"
    if not jnp.issubdtype(indices.dtype, jnp.integer):
        return f"needs integer indices as its second input, received dtype {indices.dtype}"
    return None


@op(TakeAlongAxisConfig, check=_check_take_along)
def take_along_axis(cfg: TakeAlongAxisConfig, x: Any, indices: Any) -> Any:
    return jnp.take_along_axis(x, indices, axis=cfg.axis, mode=cfg.mode)


class PositionsConfig(Config):
    """Integer positions ``0 .. n-1`` along ``axis`` of the input, broadcast to the input's shape.

    For learned position embeddings: token ids ``(batch, T)`` give ``(batch, T)`` with
    every row ``0 .. T-1``; follow with an ``Embed`` and ``add``. Only the input's shape
    is used. Positions start at ``start``.
    """

    type: Literal["positions"] = "positions"
    axis: int = 1
    start: int = 0
    dtype: DType = "int32"


@op(PositionsConfig, check=axis_check())
def positions(cfg: PositionsConfig, x: Any) -> Any:
    import jax

    pos = jax.lax.broadcasted_iota(to_dtype(cfg.dtype), x.shape, cfg.axis % x.ndim)
    return pos + cfg.start if cfg.start else pos
