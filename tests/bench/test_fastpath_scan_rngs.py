"""The fast path on scanned blocks that hold RNG streams (Dropout, attention).

``fast_forward`` used to merge the module's outer RNG Variables inside ``jax.jit``;
``nnx.scan`` then refused them ("Cannot extract graph node from different trace level"),
so GPT-2-style specs could be neither benchmarked nor exported.
"""

from __future__ import annotations

import numpy as np
from flax import nnx

import nnx_build

SPEC = """\
format: 1
name: scanned_dropout
seed: 0
inputs:
  x: {shape: [batch, 4], dtype: float32}
blocks:
  Block:
    inputs: [x]
    layers:
      - lin: {type: Linear, in_features: 4, out_features: 4}
      - drop: {type: Dropout, rate: 0.5}
      - out: {type: add, in: [x, drop]}
layers:
  - h: {type: Block, repeat: 3, scan: true}
outputs: [h]
"""


def test_fast_forward_runs_scanned_blocks_with_rngs() -> None:
    model = nnx_build.build(SPEC)
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    got = np.asarray(nnx_build.fast_forward(model)(x))
    model.eval()
    want = np.asarray(nnx.jit(lambda m, x: m(x))(model, x))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
