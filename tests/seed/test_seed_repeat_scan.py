"""``repeat: 4, scan: true``: copies stacked with nnx.vmap at build, run with nnx.scan.

The stacked module must behave as the four copies run one after another.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from seed_modules import normal

import nnx_build

SPEC = """
format: 1
name: deep
seed: 0
inputs:
  x: {shape: [batch, 4]}
blocks:
  layer:
    layers:
      - linear: {type: Linear, in_features: 4, out_features: 4}
      - bn: {type: BatchNorm, num_features: 4}
      - dropout: {type: Dropout, rate: 0.5}
      - relu
layers:
  - stack: {type: layer, repeat: 4, scan: true}
  - head: {type: Linear, in_features: 4, out_features: 1}
"""


@pytest.fixture(scope="module")
def built_deep() -> nnx.Module:
    return nnx_build.build(SPEC)


@pytest.fixture
def deep(built_deep: nnx.Module) -> nnx.Module:
    return nnx.clone(built_deep)


def member(stack: nnx.Module, i: int) -> nnx.Module:
    graphdef, state = nnx.split(stack)
    return nnx.merge(graphdef, jax.tree.map(lambda a: a[i], state))


def by_hand(params: dict, stats: dict, x: jax.Array) -> jax.Array:
    """The eval-mode forward from the stacked arrays, slicing copy i for layer i."""
    for i in range(4):
        h = x @ params["kernel"][i] + params["bias"][i]
        h = (h - stats["mean"][i]) / jnp.sqrt(stats["var"][i] + 1e-5) * params["scale"][i] + params["bn_bias"][i]
        x = jnp.maximum(h, 0)
    return x @ params["head_kernel"] + params["head_bias"]


def _arrays(m: nnx.Module) -> tuple[dict, dict]:
    s = m.stack
    params = {
        "kernel": s.linear.kernel[...],
        "bias": s.linear.bias[...],
        "scale": s.bn.scale[...],
        "bn_bias": s.bn.bias[...],
        "head_kernel": m.head.kernel[...],
        "head_bias": m.head.bias[...],
    }
    return params, {"mean": s.bn.mean[...], "var": s.bn.var[...]}


def test_stacked_shapes(built_deep: nnx.Module, capsys: pytest.CaptureFixture[str]) -> None:
    s = built_deep.stack
    assert s.linear.kernel.shape[0] == 4
    assert s.linear.kernel.shape == (4, 4, 4)
    assert s.bn.mean.shape == (4, 4)
    assert s.dropout.rngs.key.shape == (4,)
    k = np.asarray(s.linear.kernel[...])
    assert all(not np.array_equal(k[i], k[j]) for i in range(4) for j in range(i + 1, 4))  # four distinct copies
    assert "Linear(" in repr(built_deep)
    nnx.display(built_deep)


def test_eval_equals_four_copies_in_sequence(deep: nnx.Module) -> None:
    deep.train()
    deep(normal(0, 8, 4))  # move the statistics so that they matter
    deep.eval()
    x = normal(1, 8, 4)
    y = deep(x)
    np.testing.assert_allclose(y, jax.jit(by_hand)(*_arrays(deep), x), rtol=1e-5, atol=1e-5)
    h = x
    for i in range(4):
        h = member(deep.stack, i)(h)
    np.testing.assert_allclose(y, deep.head(h), rtol=1e-5, atol=1e-5)


def test_train_equals_four_copies_in_sequence(deep: nnx.Module) -> None:
    deep.train()
    copies = [member(deep.stack, i) for i in range(4)]
    x = normal(2, 8, 4)
    y = deep(x)
    h = x
    for c in copies:  # each copy with its own dropout stream and statistics
        h = c(h)
    np.testing.assert_allclose(y, deep.head(h), rtol=1e-5, atol=1e-5)
    for i, c in enumerate(copies):  # statistics updated in place, per copy
        np.testing.assert_allclose(deep.stack.bn.mean[...][i], c.bn.mean[...], rtol=1e-5, atol=1e-7)
        assert int(deep.stack.dropout.rngs.count[...][i]) == int(c.dropout.rngs.count[...])
    assert not np.array_equal(deep(x), y)  # the next call draws new masks


def test_grad_through_the_scan(deep: nnx.Module) -> None:
    deep.eval()
    x, t = normal(3, 8, 4), normal(4, 8, 1)
    grads = nnx.grad(lambda m: ((m(x) - t) ** 2).mean())(deep)
    gk = grads["stack"]["linear"]["kernel"].get_value()
    assert gk.shape == (4, 4, 4)
    assert np.abs(gk).sum() > 0
    params, stats = _arrays(deep)
    expected = jax.jit(jax.grad(lambda p: ((by_hand(p, stats, x) - t) ** 2).mean()))(params)
    np.testing.assert_allclose(gk, expected["kernel"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grads["stack"]["bn"]["scale"].get_value(), expected["scale"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grads["head"]["kernel"].get_value(), expected["head_kernel"], rtol=1e-4, atol=1e-6)


def test_jit_matches_eager(deep: nnx.Module) -> None:
    deep.eval()
    x = normal(5, 8, 4)
    np.testing.assert_allclose(nnx.jit(lambda m, x: m(x))(deep, x), deep(x), rtol=1e-5, atol=1e-6)
