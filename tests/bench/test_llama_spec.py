"""specs/zoo/llama_7b.yaml (the scale benchmark's 7B spec): its count against the formula."""

from __future__ import annotations

from pathlib import Path

import nnx_build

SPEC = Path(__file__).resolve().parents[2] / "specs" / "zoo" / "llama_7b.yaml"


def llama_params(vocab: int, d: int, heads: int, kv_heads: int, hidden: int, layers: int) -> int:
    """LLaMA without biases: embedding, blocks (attention, SwiGLU, two RMSNorms), final norm, untied head."""
    kv = d // heads * kv_heads
    block = 2 * d * d + 2 * d * kv + 3 * d * hidden + 2 * d
    return vocab * d + layers * block + d + d * vocab


def test_llama_7b_abstract_count() -> None:
    report = nnx_build.check(SPEC)
    expected = llama_params(32000, 4096, 32, 32, 11008, 32)
    assert expected == 6_738_415_616  # the published LLaMA-7B size (6.74 B)
    assert report.params == {"Param": expected}
    assert report.outputs["output"] == {"shape": ["batch", "seq", 32000], "dtype": "float32"}
    layers = next(r for r in report.rows if r.name == "layers")
    assert layers.type == "Block x32 (scan)"


def test_same_architecture_at_tinyllama_size() -> None:
    """The benchmarks' 1.1 B model: TinyLlama's dims (grouped-query attention, 4 kv heads)."""
    text = SPEC.read_text().replace(
        "args: {vocab: 32000, d_model: 4096, heads: 32, kv_heads: 32, hidden: 11008, layers: 32, eps: 1.0e-5}",
        "args: {vocab: 32000, d_model: 2048, heads: 32, kv_heads: 4, hidden: 5632, layers: 22, eps: 1.0e-5}",
    )
    expected = llama_params(32000, 2048, 32, 4, 5632, 22)
    assert expected == 1_100_048_384  # TinyLlama-1.1B
    assert nnx_build.check(text).params == {"Param": expected}
