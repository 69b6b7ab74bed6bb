"""Shape ops: reshape, flatten, concatenate, transpose, squeeze, broadcast, split, stack,
pad, repeat, tile, flip, roll.

Shapes given to ops exclude the leading ``batch_dims`` dimensions (1 by default), as
Keras' ``Reshape`` does, so a spec stays polymorphic in its batch size.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import jax.numpy as jnp
from pydantic import Field, model_validator

from ..schemas.common import Config
from ..text import fmt_shape
from ._base import axes_arg, axis_check, bad_axes, op


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


class TransposeConfig(Config):
    """Permutes every dimension, the batch included: output dim ``i`` is input dim ``axes[i]``.

    ``axes: [0, 2, 1]`` swaps the last two dims of a ``(batch, a, b)`` input, giving
    ``(batch, b, a)``; omitted, the dims are reversed (as ``jnp.transpose`` does).
    """

    type: Literal["transpose"] = "transpose"
    axes: list[int] | None = None


def _check_transpose(cfg: TransposeConfig, x: Any) -> str | None:
    if cfg.axes is None:
        return None
    n = len(x.shape)
    if sorted(a % n if -n <= a < n else a + 10 * n for a in cfg.axes) != list(range(n)):
        return f"needs axes to be a permutation of the {n} dims of its input {fmt_shape(x.shape)} (batch included), received {cfg.axes}"
    return None


@op(TransposeConfig, check=_check_transpose)
def transpose(cfg: TransposeConfig, x: Any) -> Any:
    return jnp.transpose(x, axes_arg(cfg.axes))


class SwapaxesConfig(Config):
    """Swaps dims ``axis1`` and ``axis2``: ``(batch, a, b)`` with ``axis1: 1, axis2: 2`` gives ``(batch, b, a)``."""

    type: Literal["swapaxes"] = "swapaxes"
    axis1: int
    axis2: int


def _check_swapaxes(cfg: SwapaxesConfig, x: Any) -> str | None:
    return bad_axes([cfg.axis1, cfg.axis2], len(x.shape), x.shape)


@op(SwapaxesConfig, check=_check_swapaxes)
def swapaxes(cfg: SwapaxesConfig, x: Any) -> Any:
    return jnp.swapaxes(x, cfg.axis1, cfg.axis2)


class SqueezeConfig(Config):
    """Removes the size-1 dims ``axis`` (required, so the batch dim is never squeezed by accident)."""

    type: Literal["squeeze"] = "squeeze"
    axis: int | list[int]


def _check_squeeze(cfg: SqueezeConfig, x: Any) -> str | None:
    bad = bad_axes(cfg.axis, len(x.shape), x.shape)
    if bad:
        return bad
    for a in [cfg.axis] if isinstance(cfg.axis, int) else cfg.axis:
        d = x.shape[a]
        if isinstance(d, int) and d != 1:
            return f"can only squeeze dims of size 1, but axis {a} of its input {fmt_shape(x.shape)} has size {d}"
    return None


@op(SqueezeConfig, check=_check_squeeze)
def squeeze(cfg: SqueezeConfig, x: Any) -> Any:
    return jnp.squeeze(x, axis=axes_arg(cfg.axis))


class ExpandDimsConfig(Config):
    """Inserts size-1 dims at ``axis`` (positions in the output): ``(batch, n)`` with ``axis: 1`` gives ``(batch, 1, n)``."""

    type: Literal["expand_dims"] = "expand_dims"
    axis: int | list[int]


def _check_expand_dims(cfg: ExpandDimsConfig, x: Any) -> str | None:
    extra = 1 if isinstance(cfg.axis, int) else len(cfg.axis)
    return bad_axes(cfg.axis, len(x.shape), x.shape, extra)


@op(ExpandDimsConfig, check=_check_expand_dims)
def expand_dims(cfg: ExpandDimsConfig, x: Any) -> Any:
    return jnp.expand_dims(x, axes_arg(cfg.axis))


class BroadcastToConfig(Config):
    """Broadcasts the dims after the first ``batch_dims`` to ``shape`` (numpy broadcasting rules)."""

    type: Literal["broadcast_to"] = "broadcast_to"
    shape: list[int]
    batch_dims: int = Field(default=1, ge=0)


@op(BroadcastToConfig)
def broadcast_to(cfg: BroadcastToConfig, x: Any) -> Any:
    inner = x.shape[cfg.batch_dims :]
    if len(inner) < len(cfg.shape):
        x = jnp.reshape(x, (*x.shape[: cfg.batch_dims], *([1] * (len(cfg.shape) - len(inner))), *inner))
    return jnp.broadcast_to(x, (*x.shape[: cfg.batch_dims], *cfg.shape))


class SplitConfig(Config):
    """Splits the input along ``axis`` into a tuple, used with ``as: [a, b, ...]``.

    ``sections: 3`` makes three equal parts (the axis size must divide evenly);
    ``sections: [2, 5]`` splits before indices 2 and 5 (three parts), as ``jnp.split`` does.
    """

    type: Literal["split"] = "split"
    sections: int | list[int] = Field(description="number of equal parts, or the indices to split before")
    axis: int = -1


def _check_split(cfg: SplitConfig, x: Any) -> str | None:
    bad = bad_axes(cfg.axis, len(x.shape), x.shape)
    if bad:
        return bad
    d = x.shape[cfg.axis]
    if isinstance(cfg.sections, int):
        if cfg.sections < 1:
            return f"needs sections >= 1, received {cfg.sections}"
        if isinstance(d, int) and d % cfg.sections:
            return f"cannot split axis {cfg.axis} of size {d} (input {fmt_shape(x.shape)}) into {cfg.sections} equal parts"
    return None


@op(SplitConfig, check=_check_split)
def split(cfg: SplitConfig, x: Any) -> Any:
    return tuple(jnp.split(x, cfg.sections, axis=cfg.axis))


class StackConfig(Config):
    """Stacks inputs of equal shape along a new ``axis`` (default 1, just after the batch dim)."""

    type: Literal["stack"] = "stack"
    axis: int = 1


@op(StackConfig)
def stack(cfg: StackConfig, *xs: Any) -> Any:
    return jnp.stack(xs, axis=cfg.axis)


class PadConfig(Config):
    """Pads the dims after the first ``batch_dims`` (``jnp.pad``); the batch dims are never padded.

    ``pad_width`` is an int (every dim, both sides), one ``[before, after]`` pair for
    every dim, or one pair per dim after the batch dims: ``(batch, h, w, c)`` with
    ``pad_width: [[1, 1], [2, 2], [0, 0]]`` gives ``(batch, h + 2, w + 4, c)``.
    """

    type: Literal["pad"] = "pad"
    pad_width: int | list[int] | list[list[int]]
    mode: Literal["constant", "edge", "reflect", "symmetric", "wrap"] = "constant"
    constant_values: float = 0.0
    batch_dims: int = Field(default=1, ge=0)

    @model_validator(mode="after")
    def _pairs(self) -> PadConfig:
        pw = self.pad_width
        if isinstance(pw, list) and pw and isinstance(pw[0], int) and len(pw) != 2:
            raise ValueError(f"pad_width must be an int, a [before, after] pair, or a list of pairs, received {pw!r}")
        if isinstance(pw, list) and pw and isinstance(pw[0], list) and any(len(p) != 2 for p in pw):  # type: ignore[arg-type]
            raise ValueError(f"pad_width must be a list of [before, after] pairs, received {pw!r}")
        flat = [pw] if isinstance(pw, int) else [v for p in pw for v in (p if isinstance(p, list) else [p])]
        if any(v < 0 for v in flat):
            raise ValueError(f"pad_width must not be negative, received {pw!r}")
        return self

    def widths(self, ndim: int) -> list[tuple[int, int]]:
        inner = ndim - self.batch_dims
        pw = self.pad_width
        if isinstance(pw, int):
            pairs = [(pw, pw)] * inner
        elif pw and isinstance(pw[0], int):
            pairs = [(pw[0], pw[1])] * inner  # type: ignore[misc]
        else:
            pairs = [(p[0], p[1]) for p in pw]  # type: ignore[index]
        return [(0, 0)] * self.batch_dims + pairs


def _check_pad(cfg: PadConfig, x: Any) -> str | None:
    inner = len(x.shape) - cfg.batch_dims
    pw = cfg.pad_width
    if inner < 0:
        return f"has batch_dims={cfg.batch_dims}, more than the {len(x.shape)} dims of its input {fmt_shape(x.shape)}"
    if isinstance(pw, list) and pw and isinstance(pw[0], list) and len(pw) != inner:
        return f"needs one [before, after] pair per dim after the batch dims ({inner} for input {fmt_shape(x.shape)}), received {len(pw)}"
    return None


@op(PadConfig, check=_check_pad)
def pad(cfg: PadConfig, x: Any) -> Any:
    widths = cfg.widths(x.ndim)
    if cfg.mode == "constant":
        return jnp.pad(x, widths, mode="constant", constant_values=cfg.constant_values)
    return jnp.pad(x, widths, mode=cfg.mode)


class RepeatConfig(Config):
    """Repeats each element ``repeats`` times along ``axis`` (``jnp.repeat``): that dim grows ``repeats``-fold."""

    type: Literal["repeat"] = "repeat"
    repeats: int = Field(ge=1)
    axis: int


@op(RepeatConfig, check=axis_check())
def repeat(cfg: RepeatConfig, x: Any) -> Any:
    return jnp.repeat(x, cfg.repeats, axis=cfg.axis)


class TileConfig(Config):
    """Tiles the input ``reps`` times per dim (``jnp.tile``); ``reps`` aligns with the trailing dims.

    ``(batch, T, d)`` with ``reps: [2, 3]`` gives ``(batch, 2 T, 3 d)``.
    """

    type: Literal["tile"] = "tile"
    reps: list[int]


@op(TileConfig)
def tile(cfg: TileConfig, x: Any) -> Any:
    reps = [1] * max(0, x.ndim - len(cfg.reps)) + list(cfg.reps)
    return jnp.tile(x, reps)


class FlipConfig(Config):
    """Reverses the order of elements along ``axis``; shape unchanged."""

    type: Literal["flip"] = "flip"
    axis: int | list[int]


@op(FlipConfig, check=axis_check())
def flip(cfg: FlipConfig, x: Any) -> Any:
    return jnp.flip(x, axis=axes_arg(cfg.axis))


class RollConfig(Config):
    """Rolls elements by ``shift`` along ``axis`` (``jnp.roll``); shape unchanged."""

    type: Literal["roll"] = "roll"
    shift: int | list[int]
    axis: int | list[int]


@op(RollConfig, check=axis_check())
def roll(cfg: RollConfig, x: Any) -> Any:
    return jnp.roll(x, axes_arg(cfg.shift), axis=axes_arg(cfg.axis))
