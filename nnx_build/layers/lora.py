"""LoRA layers of ``flax.nnx.nn.lora``: LoRA and LoRALinear."""

from __future__ import annotations

from typing import Literal

from flax import nnx
from pydantic import Field

from ..schemas.common import Config, DType, Init
from ._base import feature_check, nnx_layer
from .linear import LinearConfig


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
