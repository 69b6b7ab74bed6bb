"""Consistency with hand-written NNX (as flax's TestLinenConsistency).

For each seed spec, the seed's hand-written class built with ``nnx.Rngs(0)`` and the
spec built with seed 0 draw from one shared Rngs in the same order, so they must have
the same variable tree (paths, variable types, shapes, dtypes), bit-identical values
(weights, batch statistics, RNG keys and counters) and identical outputs.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from seed_modules import AUTOENCODER, BLOCK, MODEL, AutoEncoder, Block, Model, normal

import nnx_build

CASES: dict[str, tuple[object, Callable[[nnx.Rngs], nnx.Module], int]] = {
    "block": (BLOCK, lambda rngs: Block(features=10, rngs=rngs), 10),
    "autoencoder": (AUTOENCODER, lambda rngs: AutoEncoder(input_dim=2, embed_dim=10, rngs=rngs), 2),
    "model": (MODEL, lambda rngs: Model(2, 64, 3, rngs=rngs), 2),
}


def _raw(v: nnx.Variable) -> np.ndarray:
    value = v.get_value()
    if jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
        value = jax.random.key_data(value)
    return np.asarray(value)


def _assert_same_variables(built: nnx.Module, hand: nnx.Module) -> None:
    fb = nnx.to_flat_state(nnx.state(built))
    fh = nnx.to_flat_state(nnx.state(hand))
    assert [p for p, _ in fb] == [p for p, _ in fh]
    for (path, vb), (_, vh) in zip(fb, fh, strict=True):
        assert type(vb) is type(vh), path
        assert vb.shape == vh.shape, path
        assert vb.dtype == vh.dtype, path
        np.testing.assert_array_equal(_raw(vb), _raw(vh), err_msg=str(path))


@pytest.fixture(params=list(CASES), scope="module")
def pair(request: pytest.FixtureRequest) -> tuple[nnx.Module, nnx.Module, int]:
    spec, make, din = CASES[request.param]
    return nnx_build.build(spec, seed=0), make(nnx.Rngs(0)), din


def test_same_variable_tree_and_values(pair) -> None:
    built, hand, _ = pair
    _assert_same_variables(built, hand)
    # the same submodule classes under the same attribute names
    for path, node in nnx.iter_graph(hand):
        if path and isinstance(node, nnx.Module):
            other = built
            for p in path:
                other = getattr(other, p)
            assert type(other) is type(node), path


def test_same_outputs(pair) -> None:
    built, hand, din = pair
    built, hand = nnx.clone(built), nnx.clone(hand)
    x = normal(0, 8, din)
    for m in (built, hand):
        m.eval()
    np.testing.assert_array_equal(built(x), hand(x))
    if isinstance(hand, AutoEncoder):
        np.testing.assert_array_equal(built.encode(x), hand.encode(x))
    # train mode too: the Dropout streams were forked identically
    for m in (built, hand):
        m.train()
    for _ in range(2):
        np.testing.assert_array_equal(built(x), hand(x))
    _assert_same_variables(built, hand)  # batch statistics and RNG counters moved alike
