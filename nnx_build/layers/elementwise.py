"""Elementwise ops, as ``jax.numpy`` has them: arithmetic over two or more inputs (with
broadcasting), math functions of one input, ``scale``, ``power``, ``clip``, ``cast``, ``where``."""

from __future__ import annotations

from functools import reduce
from typing import Any, Literal

import jax.numpy as jnp
from pydantic import create_model

from ..schemas.common import Config, DType, to_dtype
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
