"""Normalisation layers of ``flax.nnx.nn.normalization``: BatchNorm, LayerNorm, RMSNorm, GroupNorm, InstanceNorm.

Fields are named as NNX names them; unset optional fields fall back to the NNX
constructor's own defaults.
"""

from __future__ import annotations

from typing import Any, Literal

from flax import nnx
from pydantic import Field, model_validator

from ..layer_table import CheckFn
from ..schemas.common import Config, DType, Init
from ._base import as_tuple, feature_check, nnx_layer


def _norm_check(field: str, axes_field: str | None = None) -> CheckFn:
    """``feature_check(field)`` when the feature axis is the last one (the default)."""
    base = feature_check(field)

    def check(cfg: Config, x: Any, *rest: Any, **kw: Any) -> str | None:
        if axes_field is not None and as_tuple(getattr(cfg, axes_field)) != (-1,):
            return None
        return base(cfg, x, *rest, **kw)

    return check


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
