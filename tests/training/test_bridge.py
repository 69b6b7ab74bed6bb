"""Linen layers through nnx.bridge: built, trained, checkpointed and exported like any step."""

from __future__ import annotations

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import linen, nnx

import nnx_build
from nnx_build.fastpath import flat_weights
from nnx_build.training import train

SPEC = """
format: 1
name: bridged
seed: 0
inputs: {x: [batch, 4]}
layers:
  - dense: {type: Linen, layer: Dense, args: {features: 16}, in_shape: [4]}
  - bn: {type: Linen, layer: BatchNorm, args: {momentum: 0.9}, in_shape: [16]}
  - relu
  - drop: {type: Linen, layer: Dropout, args: {rate: 0.2}}
  - head: {type: Linen, layer: Dense, args: {features: 3}, in_shape: [16]}
train:
  targets: {y: int32}
  loss: softmax_cross_entropy_with_integer_labels
  metrics: [accuracy]
  optimizer: {type: adam, learning_rate: 0.01}
  batch_size: 32
  epochs: 4
  eval_split: 0.25
"""


def test_linen_layer_is_tonnx_with_the_same_weights() -> None:
    model = nnx_build.build(SPEC)
    assert isinstance(model.dense, nnx.bridge.ToNNX)
    hand = nnx.bridge.ToNNX(linen.Dense(16), rngs=nnx.Rngs(0)).lazy_init(jnp.zeros((1, 4)))
    np.testing.assert_array_equal(model.dense.kernel[...], hand.kernel[...])
    assert type(model.bn.mean) is nnx.BatchStat and type(model.head.kernel) is nnx.Param
    x = jnp.ones((3, 4))
    model.eval()
    np.testing.assert_array_equal(model(x), model(x))  # deterministic, running averages
    model.train()
    assert not np.array_equal(model(x), model(x))  # Linen Dropout draws from the model's RNG


def test_bridged_model_trains_and_exports(tmp_path: Path, cls_npz: Path) -> None:
    model0 = nnx_build.build(SPEC)
    before = {k: np.asarray(v) for k, v in flat_weights(model0).items()}
    model, result = train(SPEC, cls_npz, out=tmp_path / "ckpt")
    losses = [h["train"]["loss"] for h in result.history]
    assert losses[-1] < 0.5 * losses[0]
    assert result.eval["accuracy"] > 0.9
    after = flat_weights(model)
    for k in ("dense/kernel", "head/kernel", "bn/scale", "bn/mean", "bn/var"):
        assert not np.array_equal(after[k], before[k]), k
    spec = tmp_path / "bridged.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "export"
    nnx_build.export(spec, out, to="stablehlo", weights=tmp_path / "ckpt", batch_sizes=(1, 5))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["verification"]["status"] == "passed"
