"""Layers built from a spec behave as the hand-written NNX layer in TRAIN mode too.

Every case sets constructor arguments away from their NNX defaults (momentum, epsilon,
axis, dropout rate, use_bias/use_scale, dtypes), so a field that the spec accepts but the
build drops (the NNX default then applies) shows up as a difference. The layers are
called several times in train mode and compared after each call, with their state
(BatchNorm's running statistics, Dropout's rng stream) compared at the end; BatchNorm's
running statistics are also checked against the textbook update formula in numpy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import nnx_build

SEED = 3
CALLS = 3


def _spec(layer: str, shape: list[int], dtype: str = "float32") -> str:
    return (
        "format: 1\nname: m\n"
        f"seed: {SEED}\n"
        f"inputs:\n  x: {{shape: {shape}, dtype: {dtype}}}\n"
        f"layers:\n  - l: {layer}\n"
        "outputs: [l]\n"
    )


class Hand(nnx.Module):
    """One hand-written layer under the name the spec gives it (``l``)."""

    def __init__(self, make: Callable[[nnx.Rngs], nnx.Module]):
        self.l = make(nnx.Rngs(SEED))

    def __call__(self, x: Any) -> Any:
        return self.l(x)


def _array(value: Any) -> np.ndarray:
    if jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(value))
    return np.asarray(value)


NOT_RNG = nnx.Not(nnx.RngState)


def _flat(module: nnx.Module, what: Any = NOT_RNG) -> dict[str, np.ndarray]:
    state = nnx.state(module, what)
    return {"/".join(map(str, p)): _array(v.get_value()) for p, v in nnx.to_flat_state(state)}


def _inputs(shape: list[int], n: int = CALLS) -> list[jnp.ndarray]:
    rng = np.random.default_rng(11)
    # shifted and scaled away from N(0, 1) so the batch statistics move the running ones
    return [jnp.asarray(rng.normal(2.0 + i, 3.0, shape).astype(np.float32)) for i in range(n)]


CASES: dict[str, tuple[str, list[int], Callable[[nnx.Rngs], nnx.Module]]] = {
    "batchnorm-momentum-epsilon": (
        "{type: BatchNorm, num_features: 4, momentum: 0.5, epsilon: 1.0e-3}",
        [6, 4],
        lambda r: nnx.BatchNorm(4, momentum=0.5, epsilon=1e-3, rngs=r),
    ),
    "batchnorm-no-bias-no-scale": (
        "{type: BatchNorm, num_features: 4, momentum: 0.5, epsilon: 1.0e-3, use_bias: false, use_scale: false}",
        [6, 4],
        lambda r: nnx.BatchNorm(4, momentum=0.5, epsilon=1e-3, use_bias=False, use_scale=False, rngs=r),
    ),
    "batchnorm-axis-1": (
        "{type: BatchNorm, num_features: 3, axis: 1, momentum: 0.5, epsilon: 1.0e-3}",
        [4, 3, 5],
        lambda r: nnx.BatchNorm(3, axis=1, momentum=0.5, epsilon=1e-3, rngs=r),
    ),
    "layernorm-epsilon": (
        "{type: LayerNorm, num_features: 4, epsilon: 0.5, use_bias: false}",
        [6, 4],
        lambda r: nnx.LayerNorm(4, epsilon=0.5, use_bias=False, rngs=r),
    ),
    "rmsnorm-epsilon": (
        "{type: RMSNorm, num_features: 4, epsilon: 0.5}",
        [6, 4],
        lambda r: nnx.RMSNorm(4, epsilon=0.5, rngs=r),
    ),
    "groupnorm-epsilon": (
        "{type: GroupNorm, num_features: 4, num_groups: 2, epsilon: 0.5}",
        [2, 3, 4],
        lambda r: nnx.GroupNorm(4, num_groups=2, epsilon=0.5, rngs=r),
    ),
    "dropout-rate": (
        "{type: Dropout, rate: 0.3}",
        [8, 16],
        lambda r: nnx.Dropout(0.3, rngs=r),
    ),
    "linear-no-bias-dtypes": (
        "{type: Linear, in_features: 4, out_features: 3, use_bias: false, dtype: bfloat16, param_dtype: float16}",
        [6, 4],
        lambda r: nnx.Linear(4, 3, use_bias=False, dtype=jnp.bfloat16, param_dtype=jnp.float16, rngs=r),
    ),
    "conv-no-bias-dtypes": (
        "{type: Conv, in_features: 2, out_features: 3, kernel_size: [3, 3], strides: 2, padding: VALID, "
        "use_bias: false, dtype: bfloat16, param_dtype: float16}",
        [2, 7, 7, 2],
        lambda r: nnx.Conv(2, 3, kernel_size=(3, 3), strides=2, padding="VALID", use_bias=False, dtype=jnp.bfloat16, param_dtype=jnp.float16, rngs=r),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_train_mode_matches_hand_written_nnx(case: str) -> None:
    layer, shape, make = CASES[case]
    built = nnx_build.build(_spec(layer, shape))
    hand = Hand(make)
    # same seed, same variables: equal (and of the same dtype) before any call
    before_b, before_h = _flat(built), _flat(hand)
    assert before_b.keys() == before_h.keys()
    for key, value in before_h.items():
        assert before_b[key].dtype == value.dtype, key
        np.testing.assert_array_equal(before_b[key], value, err_msg=key)
    built.train()
    hand.train()
    for i, x in enumerate(_inputs(shape)):
        yb, yh = built(x), hand(x)
        assert yb.dtype == yh.dtype and yb.shape == yh.shape, (i, yb.dtype, yh.dtype)
        np.testing.assert_allclose(np.asarray(yb, np.float32), np.asarray(yh, np.float32), rtol=1e-6, atol=1e-6, err_msg=f"call {i}")
    after_b, after_h = _flat(built, ...), _flat(hand, ...)
    assert after_b.keys() == after_h.keys()
    for key, value in after_h.items():
        np.testing.assert_allclose(np.asarray(after_b[key], np.float64), np.asarray(value, np.float64), rtol=1e-6, atol=1e-7, err_msg=key)
    # and eval mode afterwards uses what training left behind, identically
    built.eval()
    hand.eval()
    x = _inputs(shape, 1)[0]
    np.testing.assert_allclose(np.asarray(built(x), np.float32), np.asarray(hand(x), np.float32), rtol=1e-6, atol=1e-6)


def test_batchnorm_running_stats_follow_the_momentum_formula() -> None:
    """mean <- m * mean + (1 - m) * batch mean, var likewise (batch variance, biased), for m = 0.5."""
    m = 0.5
    built = nnx_build.build(_spec(f"{{type: BatchNorm, num_features: 4, momentum: {m}, epsilon: 1.0e-3}}", [6, 4]))
    built.train()
    mean, var = np.zeros(4), np.ones(4)
    for x in _inputs([6, 4]):
        built(x)
        xs = np.asarray(x, np.float64)
        mean = m * mean + (1 - m) * xs.mean(0)
        var = m * var + (1 - m) * xs.var(0)
    stats = {k.rsplit("/", 1)[-1]: v for k, v in _flat(built, nnx.BatchStat).items()}
    np.testing.assert_allclose(stats["mean"], mean, rtol=1e-5)
    np.testing.assert_allclose(stats["var"], var, rtol=1e-5)
    # a default momentum (0.99) would have moved the mean by only about 1% of the batch means
    assert np.all(np.abs(stats["mean"]) > 1.0)


def test_dropout_drops_the_rate_and_scales_the_rest() -> None:
    """rate 0.3 in train mode: about 30% zeros, survivors scaled by 1 / 0.7; eval is the identity."""
    built = nnx_build.build(_spec("{type: Dropout, rate: 0.3}", [64, 64]))
    x = jnp.ones((64, 64), jnp.float32)
    built.train()
    ys = [np.asarray(built(x)) for _ in range(CALLS)]
    for y in ys:
        kept = y[y != 0]
        np.testing.assert_allclose(kept, 1 / 0.7, rtol=1e-6)
        assert 0.25 < float((y == 0).mean()) < 0.35
    assert not np.array_equal(ys[0], ys[1])  # the rng stream advances between calls
    built.eval()
    np.testing.assert_array_equal(np.asarray(built(x)), np.asarray(x))
