"""A built module's variables as bytes, path by path (RNG keys as their key data): what
tests compare to say two builds hold the same values, bit for bit."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def state_bytes(model: nnx.Module) -> list[tuple[Any, bytes]]:
    out = []
    for path, v in nnx.to_flat_state(nnx.state(model)):
        value = v.get_value()
        if jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
            value = jax.random.key_data(value)
        out.append((path, np.asarray(value).tobytes()))
    return out
