"""Tensor ops: arithmetic, elementwise math, reductions, shape manipulation, gathers,
contractions and ``dot_product_attention``.

Shapes given to ops exclude the leading ``batch_dims`` dimensions (1 by default), as
Keras' ``Reshape`` does, so a spec stays polymorphic in its batch size.
"""

from __future__ import annotations

import math
from functools import reduce
from typing import Any, Literal

import jax.numpy as jnp
from pydantic import Field, create_model, model_validator

from ..schemas.common import Config, DType, Precision, to_dtype
from ._base import op


# ---- helpers ---------------------------------------------------------------------------


def _axes(axis: int | list[int] | None) -> int | tuple[int, ...] | None:
    return tuple(axis) if isinstance(axis, list) else axis


def _fmt(shape: Any) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _bad_axes(axis: int | list[int] | None, ndim: int, shape: Any, extra: int = 0) -> str | None:
    """A message when an axis is outside ``[-ndim - extra, ndim + extra)``, else None."""
    if axis is None:
        return None
    n = ndim + extra
    for a in [axis] if isinstance(axis, int) else axis:
        if not -n <= a < n:
            return f"has axis {a}, outside the {n} dimension(s) of its input {_fmt(shape)}"
    return None


def _axis_check(field: str = "axis", extra: int = 0):
    """A check that ``cfg.<field>`` names dimensions of the first input."""

    def check(cfg: Config, x: Any, *rest: Any, **kw: Any) -> str | None:
        return _bad_axes(getattr(cfg, field), len(x.shape), x.shape, extra)

    return check


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


@op(MeanConfig, check=_axis_check())
def mean(cfg: MeanConfig, x: Any) -> Any:
    axis = tuple(cfg.axis) if isinstance(cfg.axis, list) else cfg.axis
    return jnp.mean(x, axis=axis, keepdims=cfg.keepdims)


# ---- arithmetic --------------------------------------------------------------------------


class SubConfig(Config):
    """Elementwise difference ``a - b`` of two inputs, with broadcasting."""

    type: Literal["sub"] = "sub"


@op(SubConfig)
def sub(cfg: SubConfig, a: Any, b: Any) -> Any:
    return a - b


class DivConfig(Config):
    """Elementwise quotient ``a / b`` of two inputs, with broadcasting."""

    type: Literal["div"] = "div"


@op(DivConfig)
def div(cfg: DivConfig, a: Any, b: Any) -> Any:
    return a / b


class MaximumConfig(Config):
    """Elementwise maximum of two or more inputs, with broadcasting."""

    type: Literal["maximum"] = "maximum"


@op(MaximumConfig)
def maximum(cfg: MaximumConfig, *xs: Any) -> Any:
    return reduce(jnp.maximum, xs)


class MinimumConfig(Config):
    """Elementwise minimum of two or more inputs, with broadcasting."""

    type: Literal["minimum"] = "minimum"


@op(MinimumConfig)
def minimum(cfg: MinimumConfig, *xs: Any) -> Any:
    return reduce(jnp.minimum, xs)


class ScaleConfig(Config):
    """Multiplies the input by the constant ``value`` (e.g. ``${1 / sqrt(d)}``); shape unchanged."""

    type: Literal["scale"] = "scale"
    value: float


@op(ScaleConfig)
def scale(cfg: ScaleConfig, x: Any) -> Any:
    return x * jnp.asarray(cfg.value, dtype=x.dtype if jnp.issubdtype(x.dtype, jnp.inexact) else None)


class PowerConfig(Config):
    """Raises the input to the constant ``exponent`` elementwise; shape unchanged."""

    type: Literal["power"] = "power"
    exponent: float


@op(PowerConfig)
def power(cfg: PowerConfig, x: Any) -> Any:
    e = cfg.exponent
    return jnp.power(x, int(e) if float(e).is_integer() else e)


class ClipConfig(Config):
    """Clips the input to ``[min, max]`` (either bound may be omitted); shape unchanged."""

    type: Literal["clip"] = "clip"
    min: float | None = None
    max: float | None = None


@op(ClipConfig)
def clip(cfg: ClipConfig, x: Any) -> Any:
    return jnp.clip(x, min=cfg.min, max=cfg.max)


#: elementwise functions of one input: name -> jnp function name
_UNARY = {
    "abs": "abs", "exp": "exp", "log": "log", "sqrt": "sqrt", "rsqrt": None, "square": "square",
    "negative": "negative", "reciprocal": "reciprocal", "sin": "sin", "cos": "cos",
    "sign": "sign", "floor": "floor", "ceil": "ceil", "stop_gradient": None,
}


def _unary_fn(name: str):
    import jax

    if name == "rsqrt":
        fn = jax.lax.rsqrt
    elif name == "stop_gradient":
        fn = jax.lax.stop_gradient
    else:
        fn = getattr(jnp, _UNARY[name])

    def apply(cfg: Config, x: Any) -> Any:
        return fn(x)

    apply.__name__ = name
    return apply


for _name in _UNARY:
    _src = "jax.lax" if _UNARY[_name] is None else "jnp"
    _model = create_model(
        f"{_name.title().replace('_', '')}Config",
        __base__=Config,
        __doc__=f"``{_src}.{_name}``, elementwise; output shape equals input shape.",
        type=(Literal[_name], _name),  # type: ignore[valid-type]
    )
    op(_model, group="math")(_unary_fn(_name))


class CastConfig(Config):
    """Converts the input to ``dtype``; shape unchanged."""

    type: Literal["cast"] = "cast"
    dtype: DType


@op(CastConfig)
def cast(cfg: CastConfig, x: Any) -> Any:
    return jnp.asarray(x).astype(to_dtype(cfg.dtype))


class WhereConfig(Config):
    """Selects ``x`` where ``condition`` holds, else ``y``: inputs ``(condition, x, y)``, broadcast.

    With ``fill_value`` set the op takes ``(condition, x)`` and fills with the constant,
    e.g. ``{type: where, fill_value: -.inf, in: [mask, scores]}``.
    """

    type: Literal["where"] = "where"
    fill_value: float | None = None


def _check_where(cfg: WhereConfig, *xs: Any, **kw: Any) -> str | None:
    n = len(xs) + len(kw)
    want = 2 if cfg.fill_value is not None else 3
    if n != want:
        what = "(condition, x) when fill_value is set" if want == 2 else "(condition, x, y), or (condition, x) with fill_value"
        return f"takes {want} inputs {what}, received {n}"
    return None


@op(WhereConfig, check=_check_where)
def where(cfg: WhereConfig, condition: Any, x: Any, y: Any = None) -> Any:
    other = cfg.fill_value if y is None else y
    return jnp.where(condition, x, other)


# ---- reductions --------------------------------------------------------------------------

_REDUCTIONS = ("sum", "max", "min", "prod", "var", "std", "any", "all")


def _reduce_fn(name: str):
    fn = getattr(jnp, name)

    def apply(cfg: Config, x: Any) -> Any:
        return fn(x, axis=_axes(cfg.axis), keepdims=cfg.keepdims)  # type: ignore[attr-defined]

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
    op(_model, check=_axis_check())(_reduce_fn(_name))


class _ArgReduceConfig(Config):
    axis: int = -1
    keepdims: bool = False


class ArgmaxConfig(_ArgReduceConfig):
    """Index of the largest value along ``axis``: drops that axis (kept with size 1 when ``keepdims``); int32."""

    type: Literal["argmax"] = "argmax"


class ArgminConfig(_ArgReduceConfig):
    """Index of the smallest value along ``axis``: drops that axis (kept with size 1 when ``keepdims``); int32."""

    type: Literal["argmin"] = "argmin"


@op(ArgmaxConfig, check=_axis_check())
def argmax(cfg: ArgmaxConfig, x: Any) -> Any:
    return jnp.argmax(x, axis=cfg.axis, keepdims=cfg.keepdims)


@op(ArgminConfig, check=_axis_check())
def argmin(cfg: ArgminConfig, x: Any) -> Any:
    return jnp.argmin(x, axis=cfg.axis, keepdims=cfg.keepdims)


class CumsumConfig(Config):
    """Cumulative sum along ``axis``; shape unchanged."""

    type: Literal["cumsum"] = "cumsum"
    axis: int = -1
    reverse: bool = False


@op(CumsumConfig, check=_axis_check())
def cumsum(cfg: CumsumConfig, x: Any) -> Any:
    import jax

    return jax.lax.cumsum(x, axis=cfg.axis % x.ndim, reverse=cfg.reverse)


class L2NormalizeConfig(Config):
    """Divides by the L2 norm along ``axis``: ``x / sqrt(max(sum(x**2), epsilon))``; shape unchanged."""

    type: Literal["l2_normalize"] = "l2_normalize"
    axis: int | list[int] = -1
    epsilon: float = 1e-12


@op(L2NormalizeConfig, check=_axis_check())
def l2_normalize(cfg: L2NormalizeConfig, x: Any) -> Any:
    import jax

    sq = jnp.sum(jnp.square(x), axis=_axes(cfg.axis), keepdims=True)
    return x * jax.lax.rsqrt(jnp.maximum(sq, cfg.epsilon))


# ---- shape manipulation -------------------------------------------------------------------


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
        return f"needs axes to be a permutation of the {n} dims of its input {_fmt(x.shape)} (batch included), received {cfg.axes}"
    return None


@op(TransposeConfig, check=_check_transpose)
def transpose(cfg: TransposeConfig, x: Any) -> Any:
    return jnp.transpose(x, _axes(cfg.axes))


class SwapaxesConfig(Config):
    """Swaps dims ``axis1`` and ``axis2``: ``(batch, a, b)`` with ``axis1: 1, axis2: 2`` gives ``(batch, b, a)``."""

    type: Literal["swapaxes"] = "swapaxes"
    axis1: int
    axis2: int


def _check_swapaxes(cfg: SwapaxesConfig, x: Any) -> str | None:
    return _bad_axes([cfg.axis1, cfg.axis2], len(x.shape), x.shape)


@op(SwapaxesConfig, check=_check_swapaxes)
def swapaxes(cfg: SwapaxesConfig, x: Any) -> Any:
    return jnp.swapaxes(x, cfg.axis1, cfg.axis2)


class SqueezeConfig(Config):
    """Removes the size-1 dims ``axis`` (required, so the batch dim is never squeezed by accident)."""

    type: Literal["squeeze"] = "squeeze"
    axis: int | list[int]


def _check_squeeze(cfg: SqueezeConfig, x: Any) -> str | None:
    bad = _bad_axes(cfg.axis, len(x.shape), x.shape)
    if bad:
        return bad
    for a in [cfg.axis] if isinstance(cfg.axis, int) else cfg.axis:
        d = x.shape[a]
        if isinstance(d, int) and d != 1:
            return f"can only squeeze dims of size 1, but axis {a} of its input {_fmt(x.shape)} has size {d}"
    return None


@op(SqueezeConfig, check=_check_squeeze)
def squeeze(cfg: SqueezeConfig, x: Any) -> Any:
    return jnp.squeeze(x, axis=_axes(cfg.axis))


class ExpandDimsConfig(Config):
    """Inserts size-1 dims at ``axis`` (positions in the output): ``(batch, n)`` with ``axis: 1`` gives ``(batch, 1, n)``."""

    type: Literal["expand_dims"] = "expand_dims"
    axis: int | list[int]


def _check_expand_dims(cfg: ExpandDimsConfig, x: Any) -> str | None:
    extra = 1 if isinstance(cfg.axis, int) else len(cfg.axis)
    return _bad_axes(cfg.axis, len(x.shape), x.shape, extra)


@op(ExpandDimsConfig, check=_check_expand_dims)
def expand_dims(cfg: ExpandDimsConfig, x: Any) -> Any:
    return jnp.expand_dims(x, _axes(cfg.axis))


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
    bad = _bad_axes(cfg.axis, len(x.shape), x.shape)
    if bad:
        return bad
    d = x.shape[cfg.axis]
    if isinstance(cfg.sections, int):
        if cfg.sections < 1:
            return f"needs sections >= 1, received {cfg.sections}"
        if isinstance(d, int) and d % cfg.sections:
            return f"cannot split axis {cfg.axis} of size {d} (input {_fmt(x.shape)}) into {cfg.sections} equal parts"
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


@op(SliceConfig, check=_axis_check())
def slice_(cfg: SliceConfig, x: Any) -> Any:
    return x[_index_tuple(x.ndim, cfg.slices())]


class IndexConfig(Config):
    """Takes position ``index`` along ``axis`` and drops that axis: ``(batch, T, d)`` with ``axis: 1, index: 0`` gives ``(batch, d)``."""

    type: Literal["index"] = "index"
    axis: int
    index: int


def _check_index(cfg: IndexConfig, x: Any) -> str | None:
    bad = _bad_axes(cfg.axis, len(x.shape), x.shape)
    if bad:
        return bad
    d = x.shape[cfg.axis]
    if isinstance(d, int) and not -d <= cfg.index < d:
        return f"has index {cfg.index}, outside axis {cfg.axis} of size {d} of its input {_fmt(x.shape)}"
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
    bad = _bad_axes(cfg.axis, len(x.shape), x.shape)
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
    bad = _bad_axes(cfg.axis, len(x.shape), x.shape)
    if bad:
        return bad
    if len(indices.shape) != len(x.shape):
        return f"needs indices of the same rank as its input, received {_fmt(x.shape)} and indices {_fmt(indices.shape)}"
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


@op(PositionsConfig, check=_axis_check())
def positions(cfg: PositionsConfig, x: Any) -> Any:
    import jax

    pos = jax.lax.broadcasted_iota(to_dtype(cfg.dtype), x.shape, cfg.axis % x.ndim)
    return pos + cfg.start if cfg.start else pos


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
        return f"has batch_dims={cfg.batch_dims}, more than the {len(x.shape)} dims of its input {_fmt(x.shape)}"
    if isinstance(pw, list) and pw and isinstance(pw[0], list) and len(pw) != inner:
        return f"needs one [before, after] pair per dim after the batch dims ({inner} for input {_fmt(x.shape)}), received {len(pw)}"
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


@op(RepeatConfig, check=_axis_check())
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


@op(FlipConfig, check=_axis_check())
def flip(cfg: FlipConfig, x: Any) -> Any:
    return jnp.flip(x, axis=_axes(cfg.axis))


class RollConfig(Config):
    """Rolls elements by ``shift`` along ``axis`` (``jnp.roll``); shape unchanged."""

    type: Literal["roll"] = "roll"
    shift: int | list[int]
    axis: int | list[int]


@op(RollConfig, check=_axis_check())
def roll(cfg: RollConfig, x: Any) -> Any:
    return jnp.roll(x, _axes(cfg.shift), axis=_axes(cfg.axis))


# ---- contractions --------------------------------------------------------------------------


class EinsumConfig(Config):
    """``jnp.einsum(equation, *inputs)``: one operand per input, in ``in:`` order.

    ``{type: einsum, equation: "bqhd,bkhd->bhqk", in: [q, k]}``; ``...`` stands for
    leading dims.
    """

    type: Literal["einsum"] = "einsum"
    equation: str
    precision: Precision = None


def _check_einsum(cfg: EinsumConfig, *xs: Any) -> str | None:
    lhs = cfg.equation.split("->")[0]
    terms = lhs.split(",")
    if len(terms) != len(xs):
        return f"equation '{cfg.equation}' has {len(terms)} operand(s), but the step has {len(xs)} input(s)"
    for t, x in zip(terms, xs, strict=True):
        t = t.strip()
        letters = len(t.replace("...", "").replace(" ", ""))
        if ("..." not in t and letters != len(x.shape)) or letters > len(x.shape):
            return f"equation term '{t}' names {letters} dim(s), but its input has shape {_fmt(x.shape)}"
    return None


@op(EinsumConfig, check=_check_einsum)
def einsum(cfg: EinsumConfig, *xs: Any) -> Any:
    kw = cfg.kwargs()
    return jnp.einsum(cfg.equation, *xs, precision=kw.get("precision"))


class DotProductAttentionConfig(Config):
    """``nnx.dot_product_attention`` (no dropout) over named inputs ``query``, ``key``, ``value`` and optional ``mask``, ``bias``.

    ``query`` is ``(batch, q_len, heads, head_dim)``, ``key`` and ``value`` are
    ``(batch, kv_len, heads, head_dim)``; ``mask`` broadcasts to
    ``(batch, heads, q_len, kv_len)`` (``causal_mask`` and ``attention_mask`` make one);
    the output is ``(batch, q_len, heads, head_dim)``.
    """

    type: Literal["dot_product_attention"] = "dot_product_attention"
    is_causal: bool = False
    dtype: DType | None = None
    precision: Precision = None


def _check_attention(cfg: DotProductAttentionConfig, *xs: Any, **kw: Any) -> str | None:
    names = ("query", "key", "value", "bias", "mask")
    got = dict(zip(names, xs, strict=False)) | kw
    missing = [n for n in ("query", "key", "value") if n not in got]
    if missing:
        return f"needs inputs query, key and value (in: {{query: q, key: k, value: v}}), missing {', '.join(missing)}"
    q, k, v = got["query"], got["key"], got["value"]
    if not (len(q.shape) == len(k.shape) == len(v.shape)) or len(q.shape) < 3:
        return f"needs query, key and value of equal rank, at least 3 (batch..., length, heads, head_dim), received {_fmt(q.shape)}, {_fmt(k.shape)}, {_fmt(v.shape)}"
    for a, b, what in ((q.shape[-1], k.shape[-1], "query and key head_dim"), (k.shape[-3], v.shape[-3], "key and value length")):
        if isinstance(a, int) and isinstance(b, int) and a != b:
            return f"needs equal {what}, received query {_fmt(q.shape)}, key {_fmt(k.shape)}, value {_fmt(v.shape)}"
    return None


@op(DotProductAttentionConfig, check=_check_attention)
def dot_product_attention(
    cfg: DotProductAttentionConfig, query: Any, key: Any, value: Any, bias: Any = None, mask: Any = None
) -> Any:
    from flax import nnx

    return nnx.dot_product_attention(query, key, value, bias=bias, mask=mask, deterministic=True, **cfg.kwargs())
