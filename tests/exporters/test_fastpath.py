"""The fast forward path: one pure jitted function of (weights, inputs), eval mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flax import nnx

import nnx_build
from nnx_build.fastpath import FastForward, fast_forward, flat_weights

SEED = Path(__file__).resolve().parents[2] / "specs" / "seed"


def _eval_copy(model: nnx.Module) -> nnx.Module:
    clone = nnx.merge(*nnx.split(model))
    clone.eval()
    return clone


@pytest.mark.parametrize("name", ["model", "block", "autoencoder"])
def test_fast_path_matches_the_model_in_eval_mode(name: str) -> None:
    model = nnx_build.build(SEED / f"{name}.yaml")
    ff = nnx_build.fast_forward(model)
    x = np.random.default_rng(0).standard_normal((5, model.nnx_build_scope.main.input_specs[0][1].shape[1])).astype(np.float32)
    want = np.asarray(_eval_copy(model)(x))
    np.testing.assert_allclose(np.asarray(ff(x)), want, rtol=1e-6, atol=1e-6)
    fn, weights = ff  # unpacks as (fn, weights)
    np.testing.assert_allclose(np.asarray(fn(weights, x)), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ff(x=x)), want, rtol=1e-6, atol=1e-6)


def test_fast_path_leaves_the_model_in_train_mode_and_skips_rng_state() -> None:
    model = nnx_build.build(SEED / "model.yaml")
    ff = fast_forward(model)
    assert model.dropout.deterministic is not True
    assert model.bn.use_running_average is not True
    assert set(ff.weights) == set(flat_weights(model))
    assert "linear/kernel" in ff.weights and "bn/mean" in ff.weights
    assert not any("rngs" in k for k in ff.weights)
    assert ff.input_names == ("x",) and ff.outputs == ("linear_out",)
    assert ff.inputs[0].shape == ("batch", 2)


def test_method_entry_point() -> None:
    model = nnx_build.build(SEED / "autoencoder.yaml")
    ff = fast_forward(model, "encode")
    x = np.ones((3, 2), np.float32)
    np.testing.assert_allclose(np.asarray(ff(x)), np.asarray(model.encode(x)), rtol=1e-6, atol=1e-6)
    assert ff.outputs == ("encoder",)
    with pytest.raises(AttributeError, match="no method 'decode'"):
        fast_forward(model, "decode")


def test_compiled_once_per_input_shape() -> None:
    model = nnx_build.build(SEED / "model.yaml")
    ff = fast_forward(model)
    for _ in range(5):
        ff(np.ones((4, 2), np.float32))
    assert ff.fn._cache_size() == 1
    ff(np.ones((9, 2), np.float32))
    assert ff.fn._cache_size() == 2


def test_with_weights_and_closed() -> None:
    model = nnx_build.build(SEED / "autoencoder.yaml")
    ff = fast_forward(model)
    zeros = {k: np.zeros_like(v) for k, v in ff.weights.items()}
    x = np.ones((2, 2), np.float32)
    assert isinstance(ff.with_weights(zeros), FastForward)
    np.testing.assert_array_equal(np.asarray(ff.with_weights(zeros)(x)), 0)
    np.testing.assert_allclose(np.asarray(ff.closed()(x)), np.asarray(model(x)), rtol=1e-6)


def test_plain_nnx_module() -> None:
    model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
    ff = fast_forward(model)
    x = np.ones((4, 2), np.float32)
    np.testing.assert_allclose(np.asarray(ff(x)), np.asarray(model(x)), rtol=1e-6)
    assert ff.inputs == ()
