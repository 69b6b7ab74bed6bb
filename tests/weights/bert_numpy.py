"""A NumPy forward of Hugging Face ``BertModel`` and sentence-transformers' mean pooling.

Written from ``transformers/models/bert/modeling_bert.py`` (BertEmbeddings, BertSelfAttention,
BertSelfOutput, BertIntermediate, BertOutput, BertPooler, get_extended_attention_mask) and
``sentence_transformers/models/Pooling.py`` / ``Normalize.py``, in float64, reading the
checkpoint's tensors by their own names: nothing of nnx-build (no spec, no mapping) is used,
so it is a reference from outside the project.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.special import erf


def _linear(x: np.ndarray, w: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    # torch.nn.Linear: x @ weight.T + bias, weight [out, in]
    return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]


def _layer_norm(x: np.ndarray, w: Mapping[str, np.ndarray], name: str, eps: float) -> np.ndarray:
    # torch.nn.LayerNorm: biased variance over the last axis
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w[f"{name}.weight"] + w[f"{name}.bias"]


def _gelu(x: np.ndarray) -> np.ndarray:
    # ACT2FN["gelu"]: the exact one, x * 0.5 * (1 + erf(x / sqrt(2)))
    return x * 0.5 * (1.0 + erf(x / np.sqrt(2.0)))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def bert_forward(
    w: Mapping[str, np.ndarray],
    input_ids: np.ndarray,
    token_type_ids: np.ndarray,
    attention_mask: np.ndarray,
    *,
    layers: int,
    heads: int,
    eps: float = 1e-12,
) -> dict[str, np.ndarray]:
    """``BertModel(...)`` in eval mode: ``last_hidden_state``, ``pooler_output``, and the
    sentence-transformers ``embeddings`` (mean over real tokens, L2-normalised)."""
    w = {k: np.asarray(v, np.float64) for k, v in w.items()}
    batch, seq = input_ids.shape
    # BertEmbeddings: word + token type + absolute position, LayerNorm (dropout is off in eval)
    position_ids = np.arange(seq)
    h = (
        w["embeddings.word_embeddings.weight"][input_ids]
        + w["embeddings.token_type_embeddings.weight"][token_type_ids]
        + w["embeddings.position_embeddings.weight"][position_ids][None]
    )
    h = _layer_norm(h, w, "embeddings.LayerNorm", eps)
    # get_extended_attention_mask: (1 - mask)[:, None, None, :] * finfo.min, added to the scores
    extended = (1.0 - attention_mask[:, None, None, :].astype(np.float64)) * np.finfo(np.float32).min
    hidden = h.shape[-1]
    head_dim = hidden // heads

    def split_heads(x: np.ndarray) -> np.ndarray:  # (b, s, all) -> (b, heads, s, head_dim)
        return x.reshape(batch, seq, heads, head_dim).transpose(0, 2, 1, 3)

    for i in range(layers):
        p = f"encoder.layer.{i}"
        q = split_heads(_linear(h, w, f"{p}.attention.self.query"))
        k = split_heads(_linear(h, w, f"{p}.attention.self.key"))
        v = split_heads(_linear(h, w, f"{p}.attention.self.value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head_dim) + extended
        context = (_softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
        attention = _layer_norm(_linear(context, w, f"{p}.attention.output.dense") + h, w, f"{p}.attention.output.LayerNorm", eps)
        inter = _gelu(_linear(attention, w, f"{p}.intermediate.dense"))
        h = _layer_norm(_linear(inter, w, f"{p}.output.dense") + attention, w, f"{p}.output.LayerNorm", eps)
    pooled = np.tanh(_linear(h[:, 0], w, "pooler.dense"))
    # sentence_transformers Pooling(mean) and Normalize
    m = attention_mask[:, :, None].astype(np.float64)
    mean = (h * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
    embeddings = mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
    return {"last_hidden_state": h, "pooler_output": pooled, "embeddings": embeddings}
