"""Small specs and data sets shared by the training tests."""

from __future__ import annotations

import numpy as np

#: a regression MLP with BatchNorm and Dropout: every kind of state a train step touches
REG_SPEC = """
format: 1
name: reg
seed: 0
inputs: {x: [batch, 2]}
layers:
  - linear: {type: Linear, in_features: 2, out_features: 16}
  - bn: {type: BatchNorm, num_features: 16}
  - dropout: {type: Dropout, rate: 0.1}
  - relu
  - out: {type: Linear, in_features: 16, out_features: 3}
train:
  loss: mean_squared_error
  metrics: [mean_absolute_error]
  optimizer:
    type: adam
    learning_rate: {type: cosine_decay_schedule, init_value: 1e-2, decay_steps: "${total_steps}"}
  clip: 1.0
  batch_size: 16
  epochs: 4
  eval_split: 0.2
"""


def reg_arrays(n: int = 160, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2)).astype(np.float32)
    w = rng.standard_normal((2, 3)).astype(np.float32)
    return {"x": x, "y": (x @ w + 0.5).astype(np.float32)}


def cls_arrays(n: int = 192, seed: int = 0) -> dict[str, np.ndarray]:
    """Three separable blobs in 4-d: x float32 (n, 4), y int32 (n,)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype(np.int32)
    centers = np.array([[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0]], np.float32)
    x = (centers[y] + 0.5 * rng.standard_normal((n, 4))).astype(np.float32)
    return {"x": x, "y": y}


#: a 3-class classifier MLP; LOSS stands for the loss to train it with
CLS_SPEC = """
format: 1
name: cls
seed: 0
inputs: {x: [batch, 4]}
layers:
  - hidden: {type: Linear, in_features: 4, out_features: 8}
  - relu
  - head: {type: Linear, in_features: 8, out_features: 3}
train:
  targets: [y]
  loss: LOSS
  optimizer: {type: adam, learning_rate: 0.01}
  batch_size: 16
  epochs: 2
  eval_split: 0.25
"""
