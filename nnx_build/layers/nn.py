"""Flax NNX layers (``flax.nnx.nn``), one model per layer, fields named as NNX names them.

Unset optional fields fall back to the NNX constructor's own defaults.
"""

from __future__ import annotations

from typing import Any, Literal

from flax import nnx
from flax.core import FrozenDict
from pydantic import Field, field_validator, model_validator

from ..registry import CheckFn
from ..schemas.common import Config, DType, Init, Padding, Precision
from ._base import feature_check, nnx_layer


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


class BatchNormConfig(Config):
    """``nnx.BatchNorm``: normalises over the batch; running statistics are ``BatchStat``s.

    Input and output ``(..., num_features)``; ``train()`` / ``eval()`` switch
    ``use_running_average``.
    """

    type: Literal["BatchNorm"] = "BatchNorm"
    positional = ("num_features",)
    num_features: int = Field(gt=0)
    use_running_average: bool | None = None
    axis: int = -1
    momentum: float = 0.99
    epsilon: float = 1e-5
    dtype: DType | None = None
    param_dtype: DType | None = None
    use_bias: bool = True
    use_scale: bool = True
    bias_init: Init | None = None
    scale_init: Init | None = None


def _batch_norm_check(cfg: BatchNormConfig, x: Any, *rest: Any, **kw: Any) -> str | None:
    what = "the last dimension" if cfg.axis == -1 else f"axis {cfg.axis}"
    return feature_check("num_features", axis=cfg.axis, what=what)(cfg, x, *rest, **kw)


nnx_layer(BatchNormConfig, nnx.BatchNorm, check=_batch_norm_check)


class LayerNormConfig(Config):
    """``nnx.LayerNorm``: normalises over the feature axis. Input and output ``(..., num_features)``."""

    type: Literal["LayerNorm"] = "LayerNorm"
    positional = ("num_features",)
    num_features: int = Field(gt=0)
    epsilon: float = 1e-6
    dtype: DType | None = None
    param_dtype: DType | None = None
    use_bias: bool = True
    use_scale: bool = True
    bias_init: Init | None = None
    scale_init: Init | None = None
    reduction_axes: int | list[int] = -1
    feature_axes: int | list[int] = -1


nnx_layer(LayerNormConfig, nnx.LayerNorm, check=feature_check("num_features"))


class DropoutConfig(Config):
    """``nnx.Dropout``: zeroes a ``rate`` fraction of inputs under ``train()``; identity under ``eval()``."""

    type: Literal["Dropout"] = "Dropout"
    positional = ("rate",)
    rate: float = Field(ge=0.0, le=1.0)
    broadcast_dims: list[int] = Field(default_factory=list)
    deterministic: bool | None = None
    rng_collection: str = "dropout"


nnx_layer(DropoutConfig, nnx.Dropout)


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


nnx_layer(ConvConfig, nnx.Conv, check=feature_check("in_features", what="the channel (last) dimension"))


# ---- helpers for checks ----------------------------------------------------------------


def _as_tuple(v: int | list[int]) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, list | tuple) else (v,)


def _norm_check(field: str, axes_field: str | None = None) -> CheckFn:
    """``feature_check(field)`` when the feature axis is the last one (the default)."""
    base = feature_check(field)

    def check(cfg: Config, x: Any, *rest: Any, **kw: Any) -> str | None:
        if axes_field is not None and _as_tuple(getattr(cfg, axes_field)) != (-1,):
            return None
        return base(cfg, x, *rest, **kw)

    return check


# ---- linear layers ----------------------------------------------------------------------


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
        n_in, n_axis = len(_as_tuple(self.in_features)), len(_as_tuple(self.axis))
        if n_in != n_axis:
            raise ValueError(f"in_features names {n_in} size(s) but axis names {n_axis} axis/axes; give one size per axis")
        return self


def _linear_general_check(cfg: LinearGeneralConfig, x: Any, *rest: Any, **kw: Any) -> str | None:
    shape = getattr(x, "shape", None)
    if shape is None:
        return None
    for a, want in zip(_as_tuple(cfg.axis), _as_tuple(cfg.in_features), strict=True):
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


class LoRAConfig(Config):
    """``nnx.LoRA``: a low-rank adapter ``y = x @ lora_a @ lora_b`` (without a base module).

    ``lora_a`` has shape ``(in_features, lora_rank)``, ``lora_b`` ``(lora_rank, out_features)``;
    both are ``LoRAParam``s. Input ``(..., in_features)``, output ``(..., out_features)``.
    """

    type: Literal["LoRA"] = "LoRA"
    positional = ("in_features", "lora_rank", "out_features")
    in_features: int = Field(gt=0)
    lora_rank: int = Field(gt=0)
    out_features: int = Field(gt=0)
    dtype: DType | None = None
    param_dtype: DType | None = None
    a_initializer: Init | None = None
    b_initializer: Init | None = None


nnx_layer(LoRAConfig, nnx.LoRA, check=feature_check("in_features"))


class LoRALinearConfig(LinearConfig):
    """``nnx.LoRALinear``: an ``nnx.Linear`` plus a low-rank ``nnx.LoRA`` adapter (``lora``).

    ``y = x @ kernel + bias + x @ lora.lora_a @ lora.lora_b``. Input ``(..., in_features)``,
    output ``(..., out_features)``. ``lora_dtype`` / ``lora_param_dtype`` apply to the adapter,
    ``dtype`` / ``param_dtype`` to the base linear layer.
    """

    type: Literal["LoRALinear"] = "LoRALinear"  # type: ignore[assignment]
    lora_rank: int = Field(gt=0)
    lora_dtype: DType | None = None
    lora_param_dtype: DType | None = None
    a_initializer: Init | None = None
    b_initializer: Init | None = None


nnx_layer(LoRALinearConfig, nnx.LoRALinear, check=feature_check("in_features"))


# ---- convolution --------------------------------------------------------------------------


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


nnx_layer(ConvTransposeConfig, nnx.ConvTranspose, check=feature_check("in_features", what="the channel (last) dimension"))


# ---- normalisation ------------------------------------------------------------------------


class RMSNormConfig(Config):
    """``nnx.RMSNorm``: divides by the root mean square over ``reduction_axes``, then scales.

    Input and output ``(..., num_features)`` (same shape and, by default, dtype).
    """

    type: Literal["RMSNorm"] = "RMSNorm"
    positional = ("num_features",)
    num_features: int = Field(gt=0)
    epsilon: float = 1e-6
    dtype: DType | None = None
    param_dtype: DType | None = None
    use_scale: bool = True
    scale_init: Init | None = None
    reduction_axes: int | list[int] = -1
    feature_axes: int | list[int] = -1
    axis_name: str | None = None
    use_fast_variance: bool = True


nnx_layer(RMSNormConfig, nnx.RMSNorm, check=_norm_check("num_features", "feature_axes"))


class GroupNormConfig(Config):
    """``nnx.GroupNorm``: normalises each group of channels over all non-batch axes.

    Give ``num_groups`` (NNX default 32) or ``group_size`` (channels per group);
    ``num_features`` must divide evenly. Input and output ``(batch, ..., num_features)``.
    """

    type: Literal["GroupNorm"] = "GroupNorm"
    positional = ("num_features",)
    num_features: int = Field(gt=0)
    num_groups: int | None = None
    group_size: int | None = None
    epsilon: float = 1e-6
    dtype: DType | None = None
    param_dtype: DType | None = None
    use_bias: bool = True
    use_scale: bool = True
    bias_init: Init | None = None
    scale_init: Init | None = None
    reduction_axes: int | list[int] | None = None
    axis_name: str | None = None
    use_fast_variance: bool = True

    @model_validator(mode="after")
    def _groups(self) -> GroupNormConfig:
        groups = self.num_groups if "num_groups" in self.model_fields_set else (None if self.group_size else 32)
        if groups is None and self.group_size is None:
            raise ValueError("give num_groups or group_size")
        if groups is not None and self.group_size is not None:
            raise ValueError("give num_groups or group_size, not both (group_size needs num_groups: null)")
        if groups is not None and self.num_features % groups:
            raise ValueError(f"num_features ({self.num_features}) must be divisible by num_groups ({groups})")
        if self.group_size is not None and self.num_features % self.group_size:
            raise ValueError(f"num_features ({self.num_features}) must be divisible by group_size ({self.group_size})")
        return self


def _build_group_norm(cfg: GroupNormConfig, *, rngs: nnx.Rngs) -> nnx.GroupNorm:
    args, kw = cfg.call_args()
    if cfg.group_size is not None and "num_groups" not in kw:
        kw["num_groups"] = None  # group_size alone: the NNX default of 32 groups would clash
    return nnx.GroupNorm(*args, **kw, rngs=rngs)


nnx_layer(GroupNormConfig, nnx.GroupNorm, check=feature_check("num_features"), build=_build_group_norm)


class InstanceNormConfig(Config):
    """``nnx.InstanceNorm``: normalises each channel of each example over the spatial axes.

    Input and output ``(batch, *spatial, num_features)``.
    """

    type: Literal["InstanceNorm"] = "InstanceNorm"
    positional = ("num_features",)
    num_features: int = Field(gt=0)
    epsilon: float = 1e-6
    dtype: DType | None = None
    param_dtype: DType | None = None
    use_bias: bool = True
    use_scale: bool = True
    bias_init: Init | None = None
    scale_init: Init | None = None
    feature_axes: int | list[int] = -1
    axis_name: str | None = None
    use_fast_variance: bool = True


nnx_layer(InstanceNormConfig, nnx.InstanceNorm, check=_norm_check("num_features", "feature_axes"))


# ---- activations with parameters ------------------------------------------------------------


class PReLUConfig(Config):
    """``nnx.PReLU``: leaky ReLU whose negative slope is a learned scalar ``Param``.

    Input and output: any shape ``(...)``.
    """

    type: Literal["PReLU"] = "PReLU"
    positional = ("negative_slope_init",)
    negative_slope_init: float = 0.01
    dtype: DType | None = None
    param_dtype: DType | None = None


nnx_layer(PReLUConfig, nnx.PReLU)
