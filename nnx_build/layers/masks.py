"""Attention masks: causal, padding (query x key), key padding and their combination.

Masks follow ``nnx.dot_product_attention``'s layout ``(batch, heads, q_len, kv_len)``,
with a size-1 heads dim that broadcasts over the heads. They are boolean by default:
``True`` where attention is allowed.
"""

from __future__ import annotations

from typing import Any, Literal

import jax.numpy as jnp
from flax import nnx

from ..schemas.common import Config, DType, to_dtype
from ..text import fmt_shape
from ._base import op

__all__ = ["AttentionMaskConfig", "CausalMaskConfig", "CombineMasksConfig", "KeyPaddingMaskConfig"]


class CausalMaskConfig(Config):
    """A causal mask from the shape of its input: ``(batch, T, ...)`` gives ``(batch, 1, T, T)``.

    Position ``i`` may attend to positions ``j <= i``. ``axis`` is the length axis; the
    dims before it are batch dims and kept, the dims after it are ignored (the input's
    values are never read), as ``nnx.make_causal_mask`` does for ``(batch, T)``.
    """

    type: Literal["causal_mask"] = "causal_mask"
    axis: int = 1
    dtype: DType = "bool"


def _check_causal(cfg: CausalMaskConfig, x: Any) -> str | None:
    n = len(x.shape)
    if not -n <= cfg.axis < n:
        return f"has axis {cfg.axis}, outside the {n} dimension(s) of its input {fmt_shape(x.shape)}"
    return None


@op(CausalMaskConfig, check=_check_causal, group="masks")
def causal_mask(cfg: CausalMaskConfig, x: Any) -> Any:
    axis = cfg.axis % x.ndim
    return nnx.make_causal_mask(jnp.zeros(x.shape[: axis + 1], jnp.int8), dtype=to_dtype(cfg.dtype))


_PAIRWISE = Literal["multiply", "logical_and", "equal", "not_equal", "greater", "greater_equal", "less", "less_equal"]


class AttentionMaskConfig(Config):
    """``nnx.make_attention_mask``: a query ``(batch, q_len)`` and a key ``(batch, kv_len)`` input give ``(batch, 1, q_len, kv_len)``.

    With one input the key is the query (self-attention). Entry ``[b, 0, i, j]`` is
    ``pairwise_fn(query[b, i], key[b, j])`` (``multiply``: both non-zero). With
    ``pad_id`` set, inputs are token ids and compare ``!= pad_id`` first, so padding
    tokens neither attend nor are attended to.
    """

    type: Literal["attention_mask"] = "attention_mask"
    pairwise_fn: _PAIRWISE = "multiply"
    pad_id: int | None = None
    dtype: DType = "bool"


def _check_attention_mask(cfg: AttentionMaskConfig, *xs: Any, **kw: Any) -> str | None:
    n = len(xs) + len(kw)
    if n not in (1, 2):
        return f"takes a query input and optionally a key input, received {n} inputs"
    shapes = [x.shape for x in (*xs, *kw.values())]
    if len(shapes) == 2 and len(shapes[0]) != len(shapes[1]):
        return f"needs query and key inputs of equal rank, received {fmt_shape(shapes[0])} and {fmt_shape(shapes[1])}"
    return None


@op(AttentionMaskConfig, check=_check_attention_mask, group="masks")
def attention_mask(cfg: AttentionMaskConfig, query_input: Any, key_input: Any = None) -> Any:
    if key_input is None:
        key_input = query_input
    if cfg.pad_id is not None:
        query_input, key_input = query_input != cfg.pad_id, key_input != cfg.pad_id
    fn = getattr(jnp, cfg.pairwise_fn)
    return nnx.make_attention_mask(query_input, key_input, pairwise_fn=fn, dtype=to_dtype(cfg.dtype))


class KeyPaddingMaskConfig(Config):
    """A key padding mask (as BERT's): a ``(batch, kv_len)`` padding mask gives ``(batch, 1, 1, kv_len)``.

    The input is ``1`` / ``True`` at real tokens and ``0`` / ``False`` at padding (or,
    with ``pad_id`` set, token ids compared ``!= pad_id``). Every query may attend to
    every real key and to no padding key; the size-1 heads and query dims broadcast in
    ``nnx.MultiHeadAttention`` (pass it as the attention's ``mask``). Padding queries
    are not masked: their outputs are ignored downstream.
    """

    type: Literal["key_padding_mask"] = "key_padding_mask"
    pad_id: int | None = None
    dtype: DType = "bool"


def _check_key_padding(cfg: KeyPaddingMaskConfig, x: Any) -> str | None:
    if len(x.shape) != 2:
        return f"needs a (batch, kv_len) padding mask, received shape {fmt_shape(x.shape)}"
    return None


@op(KeyPaddingMaskConfig, check=_check_key_padding, group="masks")
def key_padding_mask(cfg: KeyPaddingMaskConfig, x: Any) -> Any:
    keep = x != cfg.pad_id if cfg.pad_id is not None else x.astype(bool)
    return keep[:, None, None, :].astype(to_dtype(cfg.dtype))


class CombineMasksConfig(Config):
    """``nnx.combine_masks``: the logical and of masks of equal rank, broadcast; e.g. causal and padding."""

    type: Literal["combine_masks"] = "combine_masks"
    dtype: DType = "bool"


def _check_combine(cfg: CombineMasksConfig, *xs: Any) -> str | None:
    ranks = {len(x.shape) for x in xs}
    if len(ranks) > 1:
        return f"needs masks of equal rank, received {', '.join(fmt_shape(x.shape) for x in xs)}"
    return None


@op(CombineMasksConfig, check=_check_combine, group="masks")
def combine_masks(cfg: CombineMasksConfig, *masks: Any) -> Any:
    return nnx.combine_masks(*masks, dtype=to_dtype(cfg.dtype))
