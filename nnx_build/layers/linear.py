"""Linear layers of ``flax.nnx.nn.linear``: Linear, LinearGeneral, Einsum, Conv, ConvTranspose, Embed.

Fields are named as NNX names them; unset optional fields fall back to the NNX
constructor's own defaults.
"""

from __future__ import annotations

from typing import Any, Literal

from flax import nnx
from flax.core import FrozenDict
from pydantic import Field, field_validator, model_validator

from ..layer_table import Problem
from ..schemas.common import Config, DType, Init, Padding, Precision
from ..text import fmt_shape
from ._base import as_tuple, feature_check, nnx_layer


class LinearConfig(Config):
    """``nnx.Linear``: ``y = x @ kernel + bias``. Input ``(..., in_features)``, output ``(..., out_features)``."""

    type: Literal["Linear"] = "Linear"
    positional = ("in_features", "out_features")
    in_features: int = Field(gt=0)
    out_features: int = Field(gt=0)
    use_bias: bool = True
    dtype: DType | None = None
    param_dtype: DType | None = None
    precision: Precision = None
    kernel_init: Init | None = None
    bias_init: Init | None = None


nnx_layer(LinearConfig, nnx.Linear, check=feature_check("in_features"))


class LinearGeneralConfig(Config):
    """``nnx.LinearGeneral``: a linear map over several axes at once.

    Contracts the input axes ``axis`` (sizes ``in_features``) with a kernel of shape
    ``(*batch_axis sizes, *in_features, *out_features)``.

    Input ``(..., *in_features)`` (the contracted axes may be anywhere, as ``axis`` says);
    output ``(..., *out_features)``: the remaining input axes followed by ``out_features``.
    """

    type: Literal["LinearGeneral"] = "LinearGeneral"
    positional = ("in_features", "out_features")
    in_features: int | list[int]
    out_features: int | list[int]
    axis: int | list[int] = -1
    batch_axis: dict[int, int] = Field(
        default_factory=dict, description="leading batch axes of a batched kernel: {axis: size}"
    )
    use_bias: bool = True
    dtype: DType | None = None
    param_dtype: DType | None = None
    kernel_init: Init | None = None
    bias_init: Init | None = None
    precision: Precision = None
    preferred_element_type: DType | None = None

    @field_validator("batch_axis", mode="before")
    @classmethod
    def _int_keys(cls, value: Any) -> Any:
        # JSON object keys are strings: {"0": 2} means axis 0
        if isinstance(value, dict):
            return {int(k) if isinstance(k, str) and k.lstrip("-").isdigit() else k: v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _axes_match(self) -> LinearGeneralConfig:
        n_in, n_axis = len(as_tuple(self.in_features)), len(as_tuple(self.axis))
        if n_in != n_axis:
            raise ValueError(f"in_features names {n_in} size(s) but axis names {n_axis} axis/axes; give one size per axis")
        return self


def _linear_general_check(cfg: LinearGeneralConfig, x: Any, *rest: Any, **kw: Any) -> str | None:
    shape = getattr(x, "shape", None)
    if shape is None:
        return None
    for a, want in zip(as_tuple(cfg.axis), as_tuple(cfg.in_features), strict=True):
        if not -len(shape) <= a < len(shape):
            return f"contracts axis {a}, but its input has shape ({', '.join(map(str, shape))})"
        got = shape[a]
        if isinstance(got, int) and got != want:
            return f"expects size {want} on axis {a} (in_features), received shape ({', '.join(map(str, shape))})"
    return None


def _build_linear_general(cfg: LinearGeneralConfig, *, rngs: nnx.Rngs) -> nnx.LinearGeneral:
    args, kw = cfg.call_args()
    if "batch_axis" in kw:
        kw["batch_axis"] = FrozenDict(kw["batch_axis"])
    return nnx.LinearGeneral(*args, **kw, rngs=rngs)


nnx_layer(LinearGeneralConfig, nnx.LinearGeneral, check=_linear_general_check, build=_build_linear_general)


class EinsumConfig(Config):
    """``nnx.Einsum``: ``y = einsum(einsum_str, x, kernel) + bias``.

    Input: the first operand of ``einsum_str`` (e.g. ``(batch, length, features)`` for
    ``"bld,dh->blh"``); output: the result of ``einsum_str``, plus a bias of
    ``bias_shape`` when given. The kernel has shape ``kernel_shape``.
    """

    type: Literal["Einsum"] = "Einsum"
    positional = ("einsum_str", "kernel_shape", "bias_shape")
    einsum_str: str
    kernel_shape: list[int]
    bias_shape: list[int] | None = None
    dtype: DType | None = None
    param_dtype: DType | None = None
    precision: Precision = None
    kernel_init: Init | None = None
    bias_init: Init | None = None
    preferred_element_type: DType | None = None

    @model_validator(mode="after")
    def _two_operands(self) -> EinsumConfig:
        spec = self.einsum_str.replace(" ", "")
        if "->" not in spec or spec.split("->")[0].count(",") != 1:
            raise ValueError(f"einsum_str must have two operands and an output, like 'bld,dh->blh'; received {self.einsum_str!r}")
        return self


nnx_layer(EinsumConfig, nnx.Einsum)


# ---- convolution --------------------------------------------------------------------------


class ConvConfig(Config):
    """``nnx.Conv``: input ``(batch, *spatial, in_features)``, output ``(batch, *spatial', out_features)``."""

    type: Literal["Conv"] = "Conv"
    positional = ("in_features", "out_features", "kernel_size")
    in_features: int = Field(gt=0)
    out_features: int = Field(gt=0)
    kernel_size: int | list[int]
    strides: int | list[int] = 1
    padding: str | int | list[int] | list[list[int]] = "SAME"
    input_dilation: int | list[int] = 1
    kernel_dilation: int | list[int] = 1
    feature_group_count: int = 1
    use_bias: bool = True
    dtype: DType | None = None
    param_dtype: DType | None = None
    precision: Precision = None
    kernel_init: Init | None = None
    bias_init: Init | None = None


def _conv_check(cfg: Any, x: Any, *rest: Any, **kw: Any) -> str | None:
    """The channel check, and an integer ``kernel_size`` on two or more spatial dims.

    NNX reads an integer kernel size as a 1-D window and folds the other spatial dims
    into the batch: on ``(batch, H, W, C)`` ``kernel_size: 7`` silently convolves W only.
    """
    problem = feature_check("in_features", what="the channel (last) dimension")(cfg, x, *rest, **kw)
    if problem:
        return problem
    spatial = len(x.shape) - 2
    if isinstance(cfg.kernel_size, int) and spatial >= 2:
        fix = "[" + ", ".join([str(cfg.kernel_size)] * spatial) + "]"
        return Problem(
            f"has an integer kernel_size {cfg.kernel_size} on an input with {spatial} spatial dims "
            f"{fmt_shape(x.shape)}, which NNX reads as a 1-D window (a convolution over the last spatial dim only); "
            f"write kernel_size: {fix}",
            field="kernel_size",
        )
    return None


nnx_layer(ConvConfig, nnx.Conv, check=_conv_check)


class ConvTransposeConfig(Config):
    """``nnx.ConvTranspose``: a transposed (fractionally strided) convolution.

    Input ``(batch, *spatial, in_features)``, output ``(batch, *spatial', out_features)``;
    with ``padding: SAME`` each spatial size is multiplied by its stride.
    """

    type: Literal["ConvTranspose"] = "ConvTranspose"
    positional = ("in_features", "out_features", "kernel_size")
    in_features: int = Field(gt=0)
    out_features: int = Field(gt=0)
    kernel_size: int | list[int]
    strides: int | list[int] | None = None
    padding: Padding = "SAME"
    kernel_dilation: int | list[int] | None = None
    use_bias: bool = True
    dtype: DType | None = None
    param_dtype: DType | None = None
    precision: Precision = None
    kernel_init: Init | None = None
    bias_init: Init | None = None
    transpose_kernel: bool = False
    preferred_element_type: DType | None = None


nnx_layer(ConvTransposeConfig, nnx.ConvTranspose, check=_conv_check)


# ---- embedding ------------------------------------------------------------------------------


class EmbedConfig(Config):
    """``nnx.Embed``: integer ids ``(...)`` to vectors ``(..., features)``; ``attend`` gives tied logits."""

    type: Literal["Embed"] = "Embed"
    positional = ("num_embeddings", "features")
    num_embeddings: int = Field(gt=0)
    features: int = Field(gt=0)
    dtype: DType | None = None
    param_dtype: DType | None = None
    embedding_init: Init | None = None


nnx_layer(EmbedConfig, nnx.Embed)
