"""Models built from the seed specs, once per session.

Tests that change a model (train(), surgery, optimisation) take a fresh copy with
``nnx.clone``, so the session-built originals stay as built.
"""

from __future__ import annotations

import pytest
from flax import nnx
from seed_modules import AUTOENCODER, BLOCK, MODEL

import nnx_build


@pytest.fixture(scope="session")
def built_block() -> nnx.Module:
    return nnx_build.build(BLOCK, seed=0)


@pytest.fixture(scope="session")
def built_autoencoder() -> nnx.Module:
    return nnx_build.build(AUTOENCODER, seed=0)


@pytest.fixture(scope="session")
def built_model() -> nnx.Module:
    return nnx_build.build(MODEL, seed=0)


@pytest.fixture
def block(built_block: nnx.Module) -> nnx.Module:
    return nnx.clone(built_block)


@pytest.fixture
def autoencoder(built_autoencoder: nnx.Module) -> nnx.Module:
    return nnx.clone(built_autoencoder)


@pytest.fixture
def model(built_model: nnx.Module) -> nnx.Module:
    return nnx.clone(built_model)

