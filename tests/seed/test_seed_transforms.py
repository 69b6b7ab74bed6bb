"""Seed section 5 (Transforms): nnx.jit, nnx.grad, nnx.vmap and nnx.scan over built modules.

The seed's ``Weights`` becomes a one-Linear spec; stacks of built modules are created
with ``nnx.vmap`` as the seed's ``Weights`` / ``WeightStack`` do.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from seed_modules import AUTOENCODER, BLOCK, MODEL, normal

import nnx_build

# the seed's Weights: a (2, 3) kernel and a zero (3,) bias, applied to one vector
WEIGHTS = """
format: 1
name: weights
inputs:
  x: {shape: [2]}
layers:
  - linear: {type: Linear, in_features: 2, out_features: 3}
"""


def vector_dot(weights: nnx.Module, x: jax.Array) -> jax.Array:
    """The seed's vector_dot, reading the built module's Linear."""
    assert weights.linear.kernel[...].ndim == 2
    assert x.ndim == 1
    return x @ weights.linear.kernel[...] + weights.linear.bias[...]


def member(stack: nnx.Module, i: int) -> nnx.Module:
    """Copy ``i`` of a stack made by nnx.vmap: slice every variable."""
    graphdef, state = nnx.split(stack)
    return nnx.merge(graphdef, jax.tree.map(lambda a: a[i], state))


def _assert_same_state(a: nnx.Module, b: nnx.Module) -> None:
    fa, fb = nnx.to_flat_state(nnx.state(a, nnx.Param)), nnx.to_flat_state(nnx.state(b, nnx.Param))
    assert [p for p, _ in fa] == [p for p, _ in fb]
    for (p, va), (_, vb) in zip(fa, fb, strict=True):
        np.testing.assert_array_equal(va.get_value(), vb.get_value(), err_msg=str(p))


# ---- jit -----------------------------------------------------------------------------


def test_jit_matches_eager(autoencoder: nnx.Module, model: nnx.Module) -> None:
    x = normal(0, 8, 2)
    fwd = nnx.jit(lambda m, x: m(x))
    encode = nnx.jit(lambda m, x: m.encode(x))
    np.testing.assert_allclose(fwd(autoencoder, x), autoencoder(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(encode(autoencoder, x), autoencoder.encode(x), rtol=1e-5, atol=1e-6)
    model.eval()
    np.testing.assert_allclose(fwd(model, x), model(x), rtol=1e-5, atol=1e-6)


def test_jit_traces_once_per_spec(built_model: nnx.Module) -> None:
    traces = []

    @nnx.jit
    def fwd(m, x):
        traces.append(1)
        return m(x)

    x = normal(0, 8, 2)
    a, b = nnx.clone(built_model), nnx_build.build(MODEL, seed=1)
    a.eval()
    b.eval()
    fwd(a, x)
    fwd(a, x)
    fwd(b, x)  # another model from the same spec: same graphdef, no retrace
    assert len(traces) == 1
    assert nnx.graphdef(a) == nnx.graphdef(b)


def test_jit_updates_state_in_place(block: nnx.Module) -> None:
    block.train()
    x = normal(1, 8, 10)
    mean0, count0 = np.asarray(block.bn.mean[...]), int(block.dropout.rngs.count[...])
    fwd = nnx.jit(lambda m, x: m(x))
    y1, y2 = fwd(block, x), fwd(block, x)
    assert not np.array_equal(block.bn.mean[...], mean0)
    assert int(block.dropout.rngs.count[...]) == count0 + 2
    assert not np.array_equal(y1, y2)  # a fresh dropout mask per call


def test_build_inside_jit_returns_a_module(built_autoencoder: nnx.Module) -> None:
    # transforms accept and return modules: build one inside nnx.jit
    made = nnx.jit(lambda: nnx_build.build(AUTOENCODER, seed=0))()
    assert type(made) is type(built_autoencoder)
    _assert_same_state(made, built_autoencoder)
    x = normal(0, 8, 2)
    np.testing.assert_allclose(made.encode(x), built_autoencoder.encode(x), rtol=1e-6)


# ---- grad ----------------------------------------------------------------------------


def test_grad_over_built_module(model: nnx.Module) -> None:
    model.eval()
    x, y = normal(2, 8, 2), normal(3, 8, 3)

    def loss_fn(m):
        return ((m(x) - y) ** 2).mean()

    grads = nnx.grad(loss_fn)(model)
    params = nnx.state(model, nnx.Param)
    assert [p for p, _ in nnx.to_flat_state(grads)] == [p for p, _ in nnx.to_flat_state(params)]
    # same numbers as plain jax.grad over the split parameters
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    expected = jax.jit(jax.grad(lambda p: loss_fn(nnx.merge(graphdef, p, rest))))(params)
    for (p, g), (_, e) in zip(nnx.to_flat_state(grads), nnx.to_flat_state(expected), strict=True):
        np.testing.assert_allclose(g.get_value(), e.get_value(), rtol=1e-5, atol=1e-7, err_msg=str(p))
    assert np.abs(grads["linear"]["kernel"].get_value()).sum() > 0

    loss, grads2 = nnx.value_and_grad(loss_fn)(model)
    np.testing.assert_allclose(loss, loss_fn(model), rtol=1e-6)
    np.testing.assert_allclose(grads2["linear_out"]["kernel"].get_value(), grads["linear_out"]["kernel"].get_value(), rtol=1e-6)


def test_grad_of_a_method(autoencoder: nnx.Module) -> None:
    x = normal(4, 8, 2)
    grads = nnx.grad(lambda m: (m.encode(x) ** 2).sum())(autoencoder)
    assert np.abs(grads["encoder"]["kernel"].get_value()).sum() > 0
    np.testing.assert_array_equal(grads["decoder"]["kernel"].get_value(), 0)  # encode does not use the decoder


# ---- vmap ----------------------------------------------------------------------------


def test_vmap_over_a_built_module(autoencoder: nnx.Module) -> None:
    xs = normal(5, 4, 8, 2)  # 4 independent batches
    ys = nnx.vmap(lambda m, x: m(x), in_axes=(None, 0))(autoencoder, xs)
    assert ys.shape == (4, 8, 2)
    for i in range(4):
        np.testing.assert_allclose(ys[i], autoencoder(xs[i]), rtol=1e-5, atol=1e-6)


def test_stack_with_vmap_over_seeds() -> None:
    # the seed: weights = nnx.vmap(lambda seed: Weights(seed), in_axes=0, out_axes=0)(seeds)
    # nnx.Rngs refuses a traced integer (hand-written NNX too), so each seed becomes a key
    seeds = jnp.arange(10)
    weights = nnx.vmap(lambda seed: nnx_build.build(WEIGHTS, rngs=nnx.Rngs(jax.random.key(seed))), in_axes=0, out_axes=0)(seeds)
    assert weights.linear.kernel.shape == (10, 2, 3)
    for i in (0, 7):  # copy i is the model built with seed i, bit for bit
        _assert_same_state(member(weights, i), nnx_build.build(WEIGHTS, seed=i))
    # the seed: y = nnx.vmap(vector_dot, in_axes=(0, 0), out_axes=1)(weights, x)
    x = normal(1, 10, 2)
    y = nnx.vmap(vector_dot, in_axes=(0, 0), out_axes=1)(weights, x)
    assert y.shape == (3, 10)
    called = nnx.vmap(lambda w, x: w(x), in_axes=(0, 0), out_axes=1)(weights, x)
    np.testing.assert_allclose(called, y, rtol=1e-6)
    for i in (0, 9):
        np.testing.assert_allclose(y[:, i], member(weights, i)(x[i]), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def block_stack() -> nnx.Module:
    # the NNX idiom for a stack: one Rngs split into as many streams as copies
    @nnx.split_rngs(splits=3)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def create(rngs: nnx.Rngs) -> nnx.Module:
        return nnx_build.build(BLOCK, rngs=rngs, check=False)

    return create(nnx.Rngs(0))


def test_stack_with_split_rngs_and_vmap(block_stack: nnx.Module) -> None:
    stack = block_stack
    assert stack.linear.kernel.shape == (3, 10, 10)
    assert stack.bn.mean.shape == (3, 10)
    assert stack.dropout.rngs.key.shape == (3,)
    k = np.asarray(stack.linear.kernel[...])
    assert not np.array_equal(k[0], k[1]) and not np.array_equal(k[1], k[2])


class SpecStack(nnx.Module):
    """The seed's WeightStack, holding a built module.

    The seed writes ``in_axes=(0,)`` on ``__init__``; Flax 0.12.8 passes ``self`` too, so
    it needs an axis for ``self`` and one for ``seed`` (the seed's literal form fails the
    same way for its own hand-written class).
    """

    @nnx.vmap(in_axes=(0, 0), out_axes=0)
    def __init__(self, seed: jax.Array):
        self.weights = nnx_build.build(WEIGHTS, rngs=nnx.Rngs(jax.random.key(seed)), check=False)

    @nnx.vmap(in_axes=(0, 0), out_axes=1)
    def __call__(self, x: jax.Array) -> jax.Array:
        return self.weights(x)


def test_weight_stack_decorators_over_built_modules() -> None:
    stack = SpecStack(jnp.arange(10))
    assert stack.weights.linear.kernel.shape == (10, 2, 3)
    x = normal(1, 10, 2)
    y = stack(x)
    assert y.shape == (3, 10)
    one = nnx_build.build(WEIGHTS, seed=4)
    np.testing.assert_allclose(y[:, 4], one(x[4]), rtol=1e-5, atol=1e-6)


# ---- scan ----------------------------------------------------------------------------


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_scan_over_a_stack_of_built_blocks(block_stack: nnx.Module, train: bool) -> None:
    stack = nnx.clone(block_stack)
    stack.train() if train else stack.eval()
    copies = [member(stack, i) for i in range(3)]  # taken before the scan touches the state

    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
    def forward(x, block):
        return block(x)

    x = normal(6, 8, 10)
    y = forward(x, stack)
    h = x
    for c in copies:  # the same three blocks, one after another, by hand
        h = c(h)
    np.testing.assert_allclose(y, h, rtol=1e-5, atol=1e-6)
    if train:  # the stacked statistics and RNG counters were updated in place
        for i, c in enumerate(copies):
            np.testing.assert_allclose(stack.bn.mean[...][i], c.bn.mean[...], rtol=1e-5, atol=1e-7)
        assert np.abs(stack.bn.mean[...]).sum() > 0
        np.testing.assert_array_equal(stack.dropout.rngs.count[...], [1, 1, 1])
