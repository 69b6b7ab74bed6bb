"""Seed section 3 (State handling): BatchNorm and Dropout state lives in the built module.

``train()`` / ``eval()`` switch modes; state is updated in place, no collections.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from seed_modules import normal


def test_train_updates_batch_stats_in_place(block: nnx.Module) -> None:
    x = normal(0, 16, 10)
    block.train()
    assert block.bn.use_running_average is False and block.dropout.deterministic is False
    h = x @ block.linear.kernel[...] + block.linear.bias[...]
    mean0, var0 = block.bn.mean[...], block.bn.var[...]
    block(x)
    m = block.bn.momentum
    # the EMA of BatchNorm, computed by hand
    np.testing.assert_allclose(block.bn.mean[...], m * mean0 + (1 - m) * h.mean(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(block.bn.var[...], m * var0 + (1 - m) * h.var(0), rtol=1e-5, atol=1e-7)
    mean1 = block.bn.mean[...]
    block(x)
    assert not jnp.array_equal(block.bn.mean[...], mean1)


def test_dropout_masks_differ_between_train_calls(block: nnx.Module) -> None:
    block.train()
    ones = jnp.ones((64, 10))
    count0 = int(block.dropout.rngs.count[...])
    a, b = block.dropout(ones), block.dropout(ones)
    assert int(block.dropout.rngs.count[...]) == count0 + 2  # RNG state advanced in place
    assert not jnp.array_equal(a == 0, b == 0)
    kept = a[a != 0]
    np.testing.assert_allclose(kept, 1 / (1 - 0.1), rtol=1e-6)  # inverted dropout scaling
    x = normal(1, 64, 10)
    assert not jnp.array_equal(block(x), block(x))


def test_eval_is_deterministic_and_leaves_state_alone(block: nnx.Module) -> None:
    x = normal(2, 8, 10)
    block.train()
    block(x)  # move the statistics away from their initial values
    block.eval()
    assert block.bn.use_running_average is True and block.dropout.deterministic is True
    state0 = nnx.state(block)
    y1, y2 = block(x), block(x)
    assert jnp.array_equal(y1, y2)
    for (p, a), (_, b) in zip(nnx.to_flat_state(state0), nnx.to_flat_state(nnx.state(block)), strict=True):
        assert np.array_equal(np.asarray(_raw(a)), np.asarray(_raw(b))), p
    # eval output by hand: running statistics, no dropout
    bn = block.bn
    h = x @ block.linear.kernel[...] + block.linear.bias[...]
    h = (h - bn.mean[...]) / jnp.sqrt(bn.var[...] + bn.epsilon) * bn.scale[...] + bn.bias[...]
    np.testing.assert_allclose(y1, jnp.maximum(h, 0), rtol=1e-5, atol=1e-6)


def test_modes_switch_back_and_forth(block: nnx.Module) -> None:
    x = normal(3, 8, 10)
    block.eval()
    y_eval = block(x)
    block.train()
    block(x)
    block.eval()
    assert not jnp.array_equal(block(x), y_eval)  # statistics moved during the train call


def _raw(v):
    import jax

    return jax.random.key_data(v.get_value()) if jnp.issubdtype(v.dtype, jax.dtypes.prng_key) else v.get_value()
