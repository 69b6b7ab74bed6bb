"""Shared by the static-shape export tests (``--dims``): a spec with a named dim besides the batch."""

from __future__ import annotations

# fixing the batch leaves ``seq`` dynamic and varied
SEQ = """\
format: 1
name: seq_linear
seed: 0
dims: {batch: 1, seq: 3}
inputs:
  x: [batch, seq, 4]
layers:
  - proj: {type: Linear, in_features: 4, out_features: 2}
outputs: [proj]
"""


def main_signature(mlir: str) -> str:
    """The signature line of ``@main`` in StableHLO text: its argument and result tensor types."""
    return next(ln for ln in mlir.splitlines() if "func.func public @main(" in ln)
