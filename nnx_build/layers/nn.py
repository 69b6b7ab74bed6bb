"""Flax NNX layers (``flax.nnx.nn``), one model per layer, fields named as NNX names them.

Unset optional fields fall back to the NNX constructor's own defaults.
"""

from __future__ import annotations

from typing import Literal

from flax import nnx
from pydantic import Field

from ..schemas.common import Config, DType, Init, Precision
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


nnx_layer(BatchNormConfig, nnx.BatchNorm, check=feature_check("num_features"))


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
