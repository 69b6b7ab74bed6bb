"""The activation ops built in a loop from flax.nnx's list (mutants of layers/activations.py).

Their configs' names, documentation and fields; keyword arguments and a named ``where``
mask reach the function; compared with numpy written here.
"""

from __future__ import annotations

import numpy as np

import nnx_build
from nnx_build import registry
from nnx_build.schemas.common import Config


def test_generated_configs_are_named_documented_and_typed() -> None:
    entry = registry.get("leaky_relu")
    assert entry is not None and entry.group == "activations"
    assert entry.config.__name__ == "LeakyReluConfig"
    assert issubclass(entry.config, Config)
    assert entry.doc == "``nnx.leaky_relu``, elementwise or along ``axis``; output shape equals input shape."
    assert set(entry.config.model_fields) >= {"type", "negative_slope"}
    assert entry.config.model_fields["negative_slope"].default == 0.01
    assert registry.get("glu").doc == "``nnx.glu``: halves ``axis`` (gated linear unit)."  # type: ignore[union-attr]
    assert registry.get("logsumexp").doc == "``nnx.logsumexp`` over ``axis`` (reduces it unless ``keepdims``)."  # type: ignore[union-attr]
    assert registry.get("relu").config.__name__ == "ReluConfig"  # type: ignore[union-attr]


def run(layer: str, inputs: str, *arrays: np.ndarray) -> np.ndarray:
    model = nnx_build.build(f"format: 1\nname: m\ninputs: {inputs}\nlayers:\n  - {layer}\n")
    return np.asarray(model(*arrays))


def test_keyword_arguments_reach_the_function() -> None:
    x = np.linspace(-2.0, 2.0, 12, dtype=np.float32).reshape(3, 4)
    y = run("{type: leaky_relu, negative_slope: 0.25}", "{x: [batch, 4]}", x)
    np.testing.assert_allclose(y, np.where(x > 0, x, 0.25 * x), rtol=1e-6)


def test_a_named_where_mask_reaches_softmax() -> None:
    x = np.arange(8, dtype=np.float32).reshape(2, 4) / 4
    mask = np.array([[True, False, True, True], [False, True, True, False]])
    y = run("{type: softmax, in: {x: x, where: m}}", "{x: [batch, 4], m: {shape: [batch, 4], dtype: bool}}", x, mask)
    e = np.where(mask, np.exp(x), 0.0)
    np.testing.assert_allclose(y, e / e.sum(axis=-1, keepdims=True), rtol=1e-5, atol=1e-7)
