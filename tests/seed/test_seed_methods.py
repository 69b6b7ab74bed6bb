"""Seed section 2 (Running computation): methods and submodules are called directly."""

from __future__ import annotations

import inspect

import jax.numpy as jnp
from flax import nnx

from seed_modules import normal


def _affine(linear: nnx.Linear, x):
    return x @ linear.kernel[...] + linear.bias[...]


def test_call_encode_and_decoder_directly(built_autoencoder: nnx.Module) -> None:
    model = built_autoencoder
    x = normal(0, 5, 2)
    y = model(x)
    z = model.encode(x)
    assert z.shape == (5, 10) and y.shape == (5, 2)
    # the seed: y = model.decoder(z)
    assert jnp.allclose(model.decoder(z), y)
    assert jnp.allclose(model.encoder(x), z)
    # and by hand from the weights
    z_hand = _affine(model.encoder, x)
    assert jnp.allclose(z, z_hand, atol=1e-6)
    assert jnp.allclose(y, _affine(model.decoder, z_hand), atol=1e-6)


def test_encode_is_a_real_method(built_autoencoder: nnx.Module) -> None:
    assert inspect.ismethod(built_autoencoder.encode)
    assert "encode" in type(built_autoencoder).__dict__


def test_keyword_input(built_autoencoder: nnx.Module) -> None:
    x = normal(1, 3, 2)
    assert jnp.array_equal(built_autoencoder(x=x), built_autoencoder(x))
    assert jnp.array_equal(built_autoencoder.encode(x=x), built_autoencoder.encode(x))
