"""Seed section 3 (State handling): BatchNorm and Dropout state lives in the built module.

``train()`` / ``eval()`` switch modes; state is updated in place, no collections.
Expected values are computed by hand with NumPy from the module's own arrays.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from seed_modules import normal


def _np(v: nnx.Variable) -> np.ndarray:
    return np.asarray(v[...])


def _linear(linear: nnx.Linear, x) -> np.ndarray:
    return np.asarray(x) @ _np(linear.kernel) + _np(linear.bias)


def test_train_updates_batch_stats_in_place(block: nnx.Module) -> None:
    x = normal(0, 8, 10)
    block.train()
    assert block.bn.use_running_average is False and block.dropout.deterministic is False
    h = _linear(block.linear, x)
    mean0, var0 = _np(block.bn.mean), _np(block.bn.var)
    block(x)
    m = block.bn.momentum
    # the EMA of BatchNorm, by hand
    np.testing.assert_allclose(_np(block.bn.mean), m * mean0 + (1 - m) * h.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(block.bn.var), m * var0 + (1 - m) * h.var(0), rtol=1e-5, atol=1e-6)
    mean1 = _np(block.bn.mean)
    block(x)
    assert not np.array_equal(_np(block.bn.mean), mean1)


def test_dropout_masks_differ_between_train_calls(block: nnx.Module) -> None:
    block.train()
    x = normal(1, 8, 10)
    count0 = int(block.dropout.rngs.count[...])
    a, b = np.asarray(block.dropout(x)), np.asarray(block.dropout(x))
    assert int(block.dropout.rngs.count[...]) == count0 + 2  # RNG state advanced in place
    assert not np.array_equal(a == 0, b == 0)
    kept = a != 0
    np.testing.assert_allclose(a[kept], np.asarray(x)[kept] / (1 - 0.1), rtol=1e-6)  # inverted dropout scaling
    assert not np.array_equal(block(x), block(x))


def test_eval_is_deterministic_and_leaves_state_alone(block: nnx.Module) -> None:
    x = normal(2, 8, 10)
    block.train()
    block(x)  # move the statistics away from their initial values
    block.eval()
    assert block.bn.use_running_average is True and block.dropout.deterministic is True
    state0 = nnx.to_flat_state(nnx.state(block))
    y1, y2 = np.asarray(block(x)), np.asarray(block(x))
    assert np.array_equal(y1, y2)
    for (p, a), (_, b) in zip(state0, nnx.to_flat_state(nnx.state(block)), strict=True):
        assert np.array_equal(_raw(a), _raw(b)), p
    # eval output by hand: running statistics, no dropout
    bn = block.bn
    h = _linear(block.linear, x)
    h = (h - _np(bn.mean)) / np.sqrt(_np(bn.var) + bn.epsilon) * _np(bn.scale) + _np(bn.bias)
    np.testing.assert_allclose(y1, np.maximum(h, 0), rtol=1e-5, atol=1e-5)


def test_modes_switch_back_and_forth(block: nnx.Module) -> None:
    x = normal(3, 8, 10)
    block.eval()
    y_eval = np.asarray(block(x))
    block.train()
    block(x)
    block.eval()
    assert not np.array_equal(block(x), y_eval)  # statistics moved during the train call


class SimpleBatchNorm(nnx.Module):
    """The seed's "Easy Implementation" BatchNorm, with statistics over the batch axis.

    The seed takes ``axis=-1``, whose (batch,) statistics only broadcast against the
    (features,) EMA when batch == features; ``axis=0`` is what it means.
    """

    def __init__(self, features: int, mu: float = 0.95):
        self.scale = nnx.Param(jnp.ones((features,)))
        self.bias = nnx.Param(jnp.zeros((features,)))
        self.mean = nnx.BatchStat(jnp.zeros((features,)))
        self.var = nnx.BatchStat(jnp.ones((features,)))
        self.mu = mu  # Static (not a Variable)

    def __call__(self, x):
        mean = jnp.mean(x, axis=0)
        var = jnp.var(x, axis=0)
        # EMA updates (mutable!)
        self.mean[...] = self.mu * self.mean[...] + (1 - self.mu) * mean
        self.var[...] = self.mu * self.var[...] + (1 - self.mu) * var
        x = (x - mean) / jnp.sqrt(var + 1e-5)
        return x * self.scale[...] + self.bias[...]


def test_hand_written_stateful_layer_in_a_built_model(block: nnx.Module) -> None:
    block.bn = SimpleBatchNorm(10)
    block.eval()  # no dropout; the simple BatchNorm has no modes
    x = normal(4, 8, 10)
    h = _linear(block.linear, x)
    y = nnx.jit(lambda m, x: m(x))(block, x)  # in-place updates survive nnx.jit too
    np.testing.assert_allclose(_np(block.bn.mean), 0.05 * h.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(block.bn.var), 0.95 + 0.05 * h.var(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, np.maximum((h - h.mean(0)) / np.sqrt(h.var(0) + 1e-5), 0), rtol=1e-4, atol=1e-4)
    assert ("bn", "mean") in {p for p, _ in nnx.to_flat_state(nnx.state(block, nnx.BatchStat))}


def _raw(v: nnx.Variable) -> np.ndarray:
    value = v.get_value()
    if jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
        value = jax.random.key_data(value)
    return np.asarray(value)
