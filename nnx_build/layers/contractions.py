"""Contractions: ``matmul``, ``einsum`` and ``dot_product_attention``."""

from __future__ import annotations

from typing import Any, Literal

import jax.numpy as jnp

from ..schemas.common import Config, DType, Precision
from ..text import fmt_shape
from ._base import op


class MatmulConfig(Config):
    """Matrix product of two inputs (``jnp.matmul``), with batch broadcasting."""

    type: Literal["matmul"] = "matmul"


@op(MatmulConfig)
def matmul(cfg: MatmulConfig, a: Any, b: Any) -> Any:
    return jnp.matmul(a, b)


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
            return f"equation term '{t}' names {letters} dim(s), but its input has shape {fmt_shape(x.shape)}"
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
        return (
            "needs query, key and value of equal rank, at least 3 (batch..., length, heads, head_dim), "
            f"received {fmt_shape(q.shape)}, {fmt_shape(k.shape)}, {fmt_shape(v.shape)}"
        )
    for a, b, what in ((q.shape[-1], k.shape[-1], "query and key head_dim"), (k.shape[-3], v.shape[-3], "key and value length")):
        if isinstance(a, int) and isinstance(b, int) and a != b:
            return f"needs equal {what}, received query {fmt_shape(q.shape)}, key {fmt_shape(k.shape)}, value {fmt_shape(v.shape)}"
    return None


@op(DotProductAttentionConfig, check=_check_attention)
def dot_product_attention(
    cfg: DotProductAttentionConfig, query: Any, key: Any, value: Any, bias: Any = None, mask: Any = None
) -> Any:
    from flax import nnx

    return nnx.dot_product_attention(query, key, value, bias=bias, mask=mask, deterministic=True, **cfg.kwargs())
