"""Catalogue entries: attention."""

from __future__ import annotations

from typing import Any, Literal

import jax.numpy as jnp
from flax import nnx
from pydantic import Field, model_validator

from ..schemas.common import Config, DType, Init, Precision, to_dtype
from ..text import fmt_shape
from ._base import nnx_layer


class MultiHeadAttentionConfig(Config):
    """``nnx.MultiHeadAttention``: multi-head dot-product attention with q/k/v/out projections.

    Called as ``attn(inputs_q, inputs_k=None, inputs_v=None, mask=None)``, positionally
    (``in: [q]`` for self-attention, ``in: [q, k, v]``) or by name
    (``in: {inputs_q: h, mask: m}``). ``inputs_k`` defaults to ``inputs_q`` and
    ``inputs_v`` to ``inputs_k``.

    Input ``inputs_q`` ``(batch..., length, in_features)``, ``inputs_k`` / ``inputs_v``
    ``(batch..., kv_length, in_kv_features)``, ``mask`` broadcastable to
    ``(batch..., num_heads, length, kv_length)``; output
    ``(batch..., length, out_features)`` (``out_features`` defaults to ``in_features``).

    ``decode`` defaults to false here (NNX requires it to be set). With ``decode: true``
    the layer attends autoregressively over a cache of ``nnx.Cache`` variables that
    ``init_cache`` sizes: the full-sequence input shape ``(batch..., max_length,
    in_features)``; each call then takes one position, ``(batch..., 1, in_features)``.
    """

    type: Literal["MultiHeadAttention"] = "MultiHeadAttention"
    positional = ("num_heads", "in_features")
    num_heads: int = Field(gt=0)
    in_features: int = Field(gt=0)
    qkv_features: int | None = Field(default=None, gt=0)
    out_features: int | None = Field(default=None, gt=0)
    num_kv_heads: int | None = Field(default=None, gt=0)
    in_kv_features: int | None = Field(default=None, gt=0)
    dtype: DType | None = None
    param_dtype: DType | None = None
    broadcast_dropout: bool = True
    dropout_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    deterministic: bool | None = None
    precision: Precision = None
    kernel_init: Init | None = None
    out_kernel_init: Init | None = None
    bias_init: Init | None = None
    out_bias_init: Init | None = None
    use_bias: bool = True
    decode: bool = False
    normalize_qk: bool = False
    keep_rngs: bool = True
    init_cache: list[int] | None = Field(
        default=None,
        description="with decode: true, the input shape (batch..., max_length, in_features) given to init_cache",
    )

    @model_validator(mode="after")
    def _heads(self) -> MultiHeadAttentionConfig:
        qkv = self.qkv_features or self.in_features
        if qkv % self.num_heads:
            raise ValueError(f"qkv_features ({qkv}) must be divisible by num_heads ({self.num_heads})")
        kv_heads = self.num_kv_heads or self.num_heads
        if self.num_heads % kv_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must be divisible by num_kv_heads ({kv_heads})")
        if self.decode and self.init_cache is None:
            raise ValueError("decode: true needs init_cache: [batch..., max_length, in_features] to size the cache")
        if self.init_cache is not None:
            if not self.decode:
                raise ValueError("init_cache is used only with decode: true")
            if len(self.init_cache) < 2 or any(d <= 0 for d in self.init_cache):
                raise ValueError(f"init_cache must be a shape (batch..., max_length, in_features) of positive sizes, received {self.init_cache}")
        return self


def _build(cfg: MultiHeadAttentionConfig, *, rngs: nnx.Rngs) -> nnx.MultiHeadAttention:
    args, kw = cfg.call_args()
    cache = kw.pop("init_cache", None)
    module = nnx.MultiHeadAttention(*args, **kw, rngs=rngs)
    if cache is not None:
        module.init_cache(tuple(cache), dtype=to_dtype(cfg.dtype) or jnp.float32)
    return module


def _shape(x: Any) -> str:
    return fmt_shape(x.shape)


def _check(cfg: MultiHeadAttentionConfig, *args: Any, **kw: Any) -> str | None:
    names = ("inputs_q", "inputs_k", "inputs_v")
    given = dict(zip(names, args, strict=False))
    given.update({k: v for k, v in kw.items() if k in names})
    unknown = [k for k in kw if k not in (*names, "mask")]
    if unknown:
        return f"has no input '{unknown[0]}'; its inputs are inputs_q, inputs_k, inputs_v, mask"
    if len(args) > 3:
        return f"takes at most 3 positional inputs (inputs_q, inputs_k, inputs_v), received {len(args)}"
    if "inputs_q" not in given:
        return "needs inputs_q, e.g. in: {inputs_q: h}"
    kv_features = cfg.in_kv_features or cfg.in_features
    for name, x in given.items():
        want = cfg.in_features if name == "inputs_q" else kv_features
        field = "in_features" if name == "inputs_q" else "in_kv_features"
        if not hasattr(x, "shape") or len(x.shape) < 2:
            return f"expects {name} of shape (batch..., length, features), received {type(x).__name__ if not hasattr(x, 'shape') else _shape(x)}"
        got = x.shape[-1]
        if isinstance(got, int) and got != want:
            return f"expects {field}={want} to match the last dimension of {name}, received shape {_shape(x)}; set {field}: {got}"
    return None


nnx_layer(MultiHeadAttentionConfig, nnx.MultiHeadAttention, check=_check, build=_build, group="attention")
