"""Parameter counts of zoo specs against the architectures' own arithmetic."""

from __future__ import annotations

from pathlib import Path

import nnx_build

ZOO = Path(__file__).resolve().parents[2] / "specs" / "zoo"


def gpt2_params(vocab: int, context: int, d: int, layers: int) -> int:
    """GPT-2 with tied output embedding: embeddings + blocks + final LayerNorm."""
    block = (
        2 * 2 * d  # two LayerNorms (scale, bias)
        + 3 * (d * d + d)  # query, key, value projections
        + (d * d + d)  # attention output projection
        + (d * 4 * d + 4 * d)  # MLP up
        + (4 * d * d + d)  # MLP down
    )
    return vocab * d + context * d + layers * block + 2 * d


def test_gpt2_xl_abstract_count() -> None:
    report = nnx_build.check(ZOO / "gpt2_xl.yaml")
    expected = gpt2_params(50257, 1024, 1600, 48)
    assert expected == 1_557_611_200  # the published GPT-2 XL size (1.56 B)
    assert report.params == {"Param": expected}
    assert report.total_bytes == expected * 4
    assert report.outputs["logits"] == {"shape": ["batch", "seq", 50257], "dtype": "float32"}
    h = next(r for r in report.rows if r.name == "h")
    assert h.type == "Block x48 (scan)"
