"""Seed section 2 (Running computation): methods and submodules are called directly."""

from __future__ import annotations

import inspect

import numpy as np
from flax import nnx
from seed_modules import normal


def _affine(linear: nnx.Linear, x) -> np.ndarray:
    return np.asarray(x) @ np.asarray(linear.kernel[...]) + np.asarray(linear.bias[...])


def test_call_encode_and_decoder_directly(built_autoencoder: nnx.Module) -> None:
    model = built_autoencoder
    x = normal(0, 8, 2)
    # the seed: y = model(x); z = model.encode(x); y = model.decoder(z)
    y = model(x)
    z = model.encode(x)
    assert z.shape == (8, 10) and y.shape == (8, 2)
    np.testing.assert_allclose(model.decoder(z), y, rtol=1e-6)
    np.testing.assert_allclose(model.encoder(x), z, rtol=1e-6)
    # and by hand from the weights
    z_hand = _affine(model.encoder, x)
    np.testing.assert_allclose(z, z_hand, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, _affine(model.decoder, z_hand), rtol=1e-5, atol=1e-6)


def test_encode_is_a_real_method(built_autoencoder: nnx.Module) -> None:
    assert inspect.ismethod(built_autoencoder.encode)
    assert "encode" in type(built_autoencoder).__dict__


def test_keyword_input(built_autoencoder: nnx.Module) -> None:
    x = normal(1, 8, 2)
    np.testing.assert_array_equal(built_autoencoder(x=x), built_autoencoder(x))
    np.testing.assert_array_equal(built_autoencoder.encode(x=x), built_autoencoder.encode(x))
