"""The fast path compiles once per input shape and dtype: no re-tracing in loops."""

from __future__ import annotations

import numpy as np

import nnx_build

SPEC = """\
format: 1
name: small
seed: 0
inputs:
  x: {shape: [batch, 3], dtype: float32}
layers:
  - linear: {type: Linear, in_features: 3, out_features: 2}
"""


def test_one_compile_per_shape_and_dtype() -> None:
    ff = nnx_build.fast_forward(nnx_build.build(SPEC))
    traces = []
    pure = ff.pure

    def counting(weights, *inputs):
        traces.append(tuple(x.shape for x in inputs))
        return pure(weights, *inputs)

    ff = type(ff)(counting, ff.weights, ff.method, ff.inputs, ff.outputs)
    for _ in range(5):
        ff(np.ones((4, 3), np.float32))
    assert len(traces) == 1
    for _ in range(3):
        ff(np.ones((7, 3), np.float32))
        ff(np.ones((4, 3), np.float32))
    assert traces == [((4, 3),), ((7, 3),)]
    other = ff.with_weights({k: v * 2 for k, v in ff.weights.items()})  # new weights, same shapes
    other(np.ones((4, 3), np.float32))
    assert traces == [((4, 3),), ((7, 3),)]
