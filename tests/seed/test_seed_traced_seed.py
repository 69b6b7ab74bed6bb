"""A traced integer seed fails in nnx-build exactly as in hand-written NNX: same error, same message.

``nnx.Rngs(<traced int>)`` is refused by NNX itself ("Invalid rng value ... prng_key"):
under ``nnx.vmap`` over integer seeds, a build must fail with that very error, whether the
seed reaches it as ``rngs=nnx.Rngs(seed)`` or as ``seed=seed``, and not with some other
``ValueError`` of its own. (Keys work: see test_stack_with_vmap_over_seeds.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import pytest
from flax import nnx
from seed_modules import AUTOENCODER, AutoEncoder

import nnx_build


def _error(make: Callable[[Any], Any]) -> tuple[type[BaseException], str]:
    with pytest.raises(Exception) as info:  # noqa: PT011 - the type and message are compared below
        nnx.vmap(make, in_axes=0, out_axes=0)(jnp.arange(2))
    return type(info.value), str(info.value)


def test_hand_written_nnx_refuses_a_traced_integer_seed() -> None:
    kind, message = _error(lambda seed: AutoEncoder(2, 10, rngs=nnx.Rngs(seed)))
    assert kind is ValueError
    assert message.startswith("Invalid rng value: ") and "prng_key" in message, message


@pytest.mark.parametrize(
    "make",
    [
        lambda seed: nnx_build.build(AUTOENCODER, rngs=nnx.Rngs(seed), check=False),
        lambda seed: nnx_build.build(AUTOENCODER, seed=seed, check=False),
        lambda seed: nnx_build.build(AUTOENCODER, seed=seed),
    ],
    ids=["rngs", "seed-unchecked", "seed"],
)
def test_the_build_fails_with_the_same_error(make: Callable[[Any], Any]) -> None:
    hand = _error(lambda seed: AutoEncoder(2, 10, rngs=nnx.Rngs(seed)))
    assert _error(make) == hand
