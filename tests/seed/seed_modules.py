"""The hand-written NNX modules of the seed document (SEED-nnx-why.md), verbatim.

Only change: ``Variable.value`` (deprecated in Flax 0.12) is read as ``v[...]``.
The tests build the same models from specs and compare against these.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

SEED_SPECS = Path(__file__).resolve().parents[2] / "specs" / "seed"
BLOCK = SEED_SPECS / "block.yaml"
AUTOENCODER = SEED_SPECS / "autoencoder.yaml"
MODEL = SEED_SPECS / "model.yaml"


def normal(seed: int, *shape: int) -> jax.Array:
    """A reproducible standard-normal float32 array (made by NumPy: nothing to compile)."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


class Block(nnx.Module):
    """Seed section 3: relu(dropout(bn(linear(x))))."""

    def __init__(self, features: int, *, rngs: nnx.Rngs):
        self.linear = nnx.Linear(features, features, rngs=rngs)
        self.bn = nnx.BatchNorm(features, rngs=rngs)
        self.dropout = nnx.Dropout(0.1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return nnx.relu(self.dropout(self.bn(self.linear(x))))


class AutoEncoder(nnx.Module):
    """Seed section 2: decoder(encoder(x)) with an ``encode`` method."""

    def __init__(self, input_dim: int, embed_dim: int, *, rngs: nnx.Rngs):
        self.encoder = nnx.Linear(input_dim, embed_dim, rngs=rngs)
        self.decoder = nnx.Linear(embed_dim, input_dim, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.decoder(self.encoder(x))

    def encode(self, x: jax.Array) -> jax.Array:
        return self.encoder(x)


class Model(nnx.Module):
    """Seed's training example: Linear -> BatchNorm -> Dropout -> relu -> Linear."""

    def __init__(self, din: int, dmid: int, dout: int, *, rngs: nnx.Rngs):
        self.linear = nnx.Linear(din, dmid, rngs=rngs)
        self.bn = nnx.BatchNorm(dmid, rngs=rngs)
        self.dropout = nnx.Dropout(0.2, rngs=rngs)
        self.linear_out = nnx.Linear(dmid, dout, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.relu(self.dropout(self.bn(self.linear(x))))
        return self.linear_out(x)


class LoraLinear(nnx.Module):
    """Seed section 4: a Linear plus a low-rank ``x @ A @ B`` term."""

    def __init__(self, linear: nnx.Linear, rank: int, *, rngs: nnx.Rngs):
        self.linear = linear
        self.A = nnx.Param(jax.random.normal(rngs(), (linear.in_features, rank)))
        self.B = nnx.Param(jax.random.normal(rngs(), (rank, linear.out_features)))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.linear(x) + x @ self.A[...] @ self.B[...]


def lora_everything(model: nnx.Module, rngs: nnx.Rngs) -> None:
    """Seed section 4, "Generic Surgery": replace every nnx.Linear with a LoraLinear."""
    for _path, module in nnx.iter_graph(model):
        if isinstance(module, nnx.Module):
            for name, value in vars(module).items():
                if isinstance(value, nnx.Linear):
                    setattr(module, name, LoraLinear(value, rank=5, rngs=rngs))


class Weights(nnx.Module):
    """Seed section 5: one (2, 3) weight and bias from an integer seed."""

    def __init__(self, seed: int):
        key = jax.random.PRNGKey(seed)
        self.kernel = nnx.Param(jax.random.uniform(key, (2, 3)))
        self.bias = nnx.Param(jnp.zeros((3,)))


def vector_dot(weights: nnx.Module, x: jax.Array) -> jax.Array:
    """Seed section 5."""
    assert weights.kernel[...].ndim == 2
    assert x.ndim == 1
    return x @ weights.kernel[...] + weights.bias[...]
