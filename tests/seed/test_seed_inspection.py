"""Seed section 1 (Inspection): a built module is inspectable right after build."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx
from seed_modules import BLOCK, normal

import nnx_build


def test_block_kernel_shape_right_after_build() -> None:
    # the seed: block = Block(features=10, rngs=nnx.Rngs(0)); block.linear.kernel.shape == (10, 10)
    block = nnx_build.build(BLOCK, rngs=nnx.Rngs(0))
    assert block.linear.kernel.shape == (10, 10)
    assert isinstance(block, nnx.Module)
    assert isinstance(block.linear, nnx.Linear)
    assert isinstance(block.bn, nnx.BatchNorm)
    assert isinstance(block.dropout, nnx.Dropout)
    assert block.dropout.rate == 0.1


def test_model_attributes_are_real_variables(built_model: nnx.Module) -> None:
    m = built_model
    assert m.linear.kernel.shape == (2, 64)
    assert m.linear.bias.shape == (64,)
    assert m.bn.mean.shape == (64,)
    assert m.linear_out.kernel.shape == (64, 3)
    assert isinstance(m.linear.kernel, nnx.Param)
    assert isinstance(m.bn.mean, nnx.BatchStat)
    # values are concrete arrays, readable without any apply/context
    np.testing.assert_array_equal(m.bn.var[...], 1.0)
    np.testing.assert_array_equal(m.linear.bias[...], 0.0)
    params = nnx.state(m, nnx.Param)
    assert sum(v.size for v in jax.tree.leaves(params)) == 2 * 64 + 64 + 64 + 64 + 64 * 3 + 3


def test_autoencoder_shapes(built_autoencoder: nnx.Module) -> None:
    assert built_autoencoder.encoder.kernel.shape == (2, 10)
    assert built_autoencoder.decoder.kernel.shape == (10, 2)


def test_display_and_repr(built_model: nnx.Module, built_block: nnx.Module, capsys) -> None:
    for m in (built_model, built_block):
        text = repr(m)
        assert "Linear(" in text and "BatchNorm(" in text and "Dropout(" in text
        nnx.display(m)
        nnx.display(nnx.state(m))
    out = capsys.readouterr().out
    assert "Linear" in out


def test_split_merge_roundtrip(built_autoencoder: nnx.Module) -> None:
    graphdef, state = nnx.split(built_autoencoder)
    again = nnx.merge(graphdef, state)
    assert type(again) is type(built_autoencoder)
    x = normal(0, 8, 2)
    np.testing.assert_array_equal(again(x), built_autoencoder(x))
    np.testing.assert_array_equal(again.encode(x), built_autoencoder.encode(x))

