"""Field types shared by every layer and op model.

Fields carry a :class:`Convert` marker when the spec value (a plain string or
mapping) must become a JAX object (a dtype, an initializer, an activation function)
before it reaches the NNX constructor.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "Config",
    "Convert",
    "DType",
    "DTypeName",
    "Init",
    "INITIALIZERS",
    "Padding",
    "Precision",
    "to_dtype",
    "to_initializer",
]

DTypeName = Literal[
    "float32", "float16", "bfloat16", "float64", "int8", "int16", "int32", "int64",
    "uint8", "uint32", "bool", "complex64",
]


@dataclass(frozen=True)
class Convert:
    """Field metadata: how a spec value becomes the constructor's argument."""

    fn: Callable[[Any], Any]


def to_dtype(name: str | None) -> Any:
    import jax.numpy as jnp

    return None if name is None else jnp.dtype(name)


DType = Annotated[DTypeName, Convert(to_dtype)]

# name -> whether the name is a factory (called with keyword arguments) or the initializer itself
INITIALIZERS: dict[str, bool] = {
    "zeros": False, "ones": False,
    "constant": True, "normal": True, "uniform": True, "truncated_normal": True,
    "variance_scaling": True, "orthogonal": True, "delta_orthogonal": True,
    "glorot_normal": True, "glorot_uniform": True, "xavier_normal": True, "xavier_uniform": True,
    "he_normal": True, "he_uniform": True, "kaiming_normal": True, "kaiming_uniform": True,
    "lecun_normal": True, "lecun_uniform": True,
}


def _check_init(value: str | dict[str, Any]) -> str | dict[str, Any]:
    from ..errors import did_you_mean

    name = value if isinstance(value, str) else value.get("type")
    if not isinstance(name, str) or name not in INITIALIZERS:
        raise ValueError(
            f"unknown initializer {name!r}{did_you_mean(str(name), INITIALIZERS)}; "
            f"expected one of {', '.join(INITIALIZERS)}"
        )
    if isinstance(value, dict):
        kwargs = {k: v for k, v in value.items() if k != "type"}
        if kwargs and not INITIALIZERS[name]:
            raise ValueError(f"initializer '{name}' takes no arguments; received {sorted(kwargs)}")
        if kwargs:
            import jax.nn.initializers as jinit

            params = inspect.signature(getattr(jinit, name)).parameters
            unknown = [k for k in kwargs if k not in params or k in ("dtype",)]
            if unknown:
                raise ValueError(
                    f"initializer '{name}' has no argument {unknown[0]!r}; "
                    f"expected some of {', '.join(p for p in params if p != 'dtype')}"
                )
    return value


def to_initializer(value: str | dict[str, Any] | None) -> Any:
    """``"zeros"`` or ``{type: normal, stddev: 0.02}`` -> a JAX initializer."""
    if value is None:
        return None
    import jax.nn.initializers as jinit

    if isinstance(value, str):
        fn = getattr(jinit, value)
        return fn() if INITIALIZERS[value] else fn
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in value.items() if k != "type"}
    fn = getattr(jinit, value["type"])
    return fn(**kwargs) if INITIALIZERS[value["type"]] else fn


Init = Annotated[
    str | dict[str, Any],
    AfterValidator(_check_init),
    Convert(to_initializer),
    Field(json_schema_extra={"description": "initializer name, or {type: name, ...arguments}"}),
]

ACTIVATIONS = (
    "celu", "elu", "gelu", "glu", "hard_sigmoid", "hard_silu", "hard_swish", "hard_tanh",
    "identity", "leaky_relu", "log_sigmoid", "log_softmax", "relu", "relu6", "selu", "sigmoid",
    "silu", "soft_sign", "softmax", "softplus", "swish", "tanh",
)


def to_activation(name: str | None) -> Any:
    if name is None:
        return None
    from flax import nnx

    return getattr(nnx, name)


Activation = Annotated[Literal[ACTIVATIONS], Convert(to_activation)]  # type: ignore[valid-type]


def _to_precision(name: str | None) -> Any:
    import jax

    return None if name is None else jax.lax.Precision[name.upper()]


Precision = Annotated[Literal["default", "high", "highest"] | None, Convert(_to_precision)]


def _to_padding(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(tuple(v) if isinstance(v, list) else v for v in value)
    return value


Padding = Annotated[
    Literal["SAME", "VALID", "CIRCULAR", "CAUSAL", "REFLECT"] | int | list[int] | list[list[int]],
    Convert(_to_padding),
]


def _convert_of(info: Any) -> Convert | None:
    """The field's Convert marker, also when nested in ``X | None`` (``DType | None``)."""
    for meta in info.metadata:
        if isinstance(meta, Convert):
            return meta
    for arg in typing.get_args(info.annotation):
        for meta in getattr(arg, "__metadata__", ()):
            if isinstance(meta, Convert):
                return meta
    return None


class Config(BaseModel):
    """Base of every layer and op model: a ``type`` tag plus the constructor's fields.

    Fields are named as the NNX constructor names them, so NNX docs double as spec docs.
    ``kwargs()`` returns the constructor's keyword arguments with conversions applied.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    type: str
    #: fields passed positionally, in order (as the NNX signature wants them)
    positional: ClassVar[tuple[str, ...]] = ()

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if name == "type" or (value is None and name not in self.model_fields_set):
                continue  # unset: the NNX constructor's own default applies
            convert = _convert_of(info)
            if convert is not None:
                value = convert.fn(value)
            else:
                if isinstance(value, list):
                    value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
            out[name] = value
        return out

    def call_args(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        kw = self.kwargs()
        args = tuple(kw.pop(n) for n in self.positional if n in kw)
        return args, kw
