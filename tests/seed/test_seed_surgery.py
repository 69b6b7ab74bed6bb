"""Seed section 4 (Model surgery): replace submodules of a built model by assignment."""

from __future__ import annotations

import numpy as np
import optax
from flax import nnx
from seed_modules import BLOCK, MODEL, LoraLinear, Model, lora_everything, normal

import nnx_build


def _np(v: nnx.Variable) -> np.ndarray:
    return np.asarray(v[...])


def _bn_eval(bn: nnx.BatchNorm, h: np.ndarray) -> np.ndarray:
    return (h - _np(bn.mean)) / np.sqrt(_np(bn.var) + bn.epsilon) * _np(bn.scale) + _np(bn.bias)


def test_lora_by_assignment_changes_the_output(block: nnx.Module) -> None:
    block.eval()
    x = normal(0, 8, 10)
    before = np.asarray(block(x))
    original = block.linear
    # exactly as the seed writes it
    block.linear = LoraLinear(block.linear, rank=5, rngs=nnx.Rngs(1))
    assert block.linear.linear is original
    assert block.linear.A.shape == (10, 5) and block.linear.B.shape == (5, 10)
    after = np.asarray(block(x))
    assert not np.allclose(after, before)
    # expected output by hand from the weights
    x, A, B = np.asarray(x), _np(block.linear.A), _np(block.linear.B)
    h = x @ _np(original.kernel) + _np(original.bias) + x @ A @ B
    np.testing.assert_allclose(after, np.maximum(_bn_eval(block.bn, h), 0), rtol=1e-5, atol=1e-4)
    # the new parameters are part of the model's state
    paths = {p for p, _ in nnx.to_flat_state(nnx.state(block, nnx.Param))}
    assert {("linear", "A"), ("linear", "B"), ("linear", "linear", "kernel")} <= paths


def test_generic_surgery_with_iter_graph() -> None:
    # the seed: rngs = nnx.Rngs(0); model = Block(rngs=rngs); then walk the graph
    rngs = nnx.Rngs(0)
    model = nnx_build.build(BLOCK, rngs=rngs)
    lora_everything(model, rngs)
    assert isinstance(model.linear, LoraLinear)
    assert isinstance(model.linear.linear, nnx.Linear)


def test_generic_surgery_matches_hand_written_model() -> None:
    rngs = nnx.Rngs(0)
    built = nnx_build.build(MODEL, rngs=rngs)
    lora_everything(built, rngs)
    hand_rngs = nnx.Rngs(0)
    hand = Model(2, 64, 3, rngs=hand_rngs)
    lora_everything(hand, hand_rngs)
    for m in (built, hand):
        assert isinstance(m.linear, LoraLinear) and isinstance(m.linear_out, LoraLinear)
        assert isinstance(m.linear.linear, nnx.Linear)  # replaced once, not wrapped twice
        m.eval()
    x = normal(1, 8, 2)
    np.testing.assert_array_equal(built(x), hand(x))
    np.testing.assert_array_equal(built.linear_out.A[...], hand.linear_out.A[...])


def test_train_after_surgery_loss_falls() -> None:
    model = nnx_build.build(MODEL, rngs=nnx.Rngs(0))
    lora_everything(model, nnx.Rngs(1))
    model.train()
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    x = normal(2, 8, 2)
    xn = np.asarray(x)
    y = np.stack([xn[:, 0] * xn[:, 1], np.sin(xn[:, 0]), xn[:, 1]], axis=-1)
    a0 = _np(model.linear.A)

    @nnx.jit
    def train_step(model, optimizer, x, y):
        def loss_fn(model):
            return ((model(x) - y) ** 2).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(train_step(model, optimizer, x, y)) for _ in range(30)]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert not np.array_equal(_np(model.linear.A), a0)  # the LoRA factors were trained
