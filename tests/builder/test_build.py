"""The builder: determinism, kinds, sharding names, tied modules, several outputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import nnx_build

TIED = """\
format: 1
name: tied
inputs: {tokens: {shape: [batch, seq], dtype: int32}}
layers:
  - wte: {type: Embed, num_embeddings: 11, features: 4}
  - h: tanh
  - logits: {type: call, module: wte, method: attend}
"""

KINDS = """\
format: 1
name: kinds
kinds:
  Frozen: {base: Param}
  Deeper: {base: Frozen}
inputs: {x: [batch, 4]}
variables:
  scale: {kind: Deeper, shape: [4], init: ones, sharding: [embed]}
  stat: {kind: BatchStat, shape: [4]}
layers:
  - s: {type: mul, in: [x, scale]}
  - fc: {type: Linear, in_features: 4, out_features: 3, kinds: {kernel: Frozen}, sharding: {kernel: [embed, mlp]}}
"""

TWO_OUTPUTS = """\
format: 1
name: two
inputs: {x: [batch, 3], y: [batch, 3]}
layers:
  - a: {type: Linear, in_features: 3, out_features: 2, in: x}
  - b: {type: Linear, in_features: 3, out_features: 5, in: y}
  - c: {type: concat, in: [a, b]}
outputs: [c, a]
methods:
  only_b:
    inputs: [y]
    outputs: [b]
"""


def _leaves(model: nnx.Module) -> list[np.ndarray]:
    return [np.asarray(v) for v in jax.tree.leaves(nnx.to_pure_dict(nnx.state(model, nnx.Param)))]


def test_same_spec_and_seed_give_bit_identical_weights(specs_dir) -> None:
    a = nnx_build.build(specs_dir / "seed/model.yaml")
    b = nnx_build.build(specs_dir / "seed/model.yaml")
    c = nnx_build.build(specs_dir / "seed/model.yaml", seed=1)
    for x, y in zip(_leaves(a), _leaves(b), strict=True):
        assert x.tobytes() == y.tobytes()
    assert any(x.tobytes() != z.tobytes() for x, z in zip(_leaves(a), _leaves(c), strict=True))


def test_tied_embedding_reuses_the_module() -> None:
    model = nnx_build.build(TIED)
    tokens = jnp.array([[1, 2, 3], [4, 5, 10]], jnp.int32)
    table = model.wte.embedding[...]
    expected = jnp.tanh(table[tokens]) @ table.T
    np.testing.assert_allclose(model(tokens), expected, rtol=1e-6)
    assert nnx_build.check(TIED).params == {"Param": 44}  # one table, 11 x 4


def test_declared_kinds_are_real_variable_subclasses() -> None:
    model = nnx_build.build(KINDS)
    scale, kernel = model.scale, model.fc.kernel
    assert type(scale).__name__ == "Deeper" and type(kernel).__name__ == "Frozen"
    assert isinstance(scale, type(kernel)) and isinstance(kernel, nnx.Param)
    assert isinstance(model.stat, nnx.BatchStat)
    frozen = nnx.state(model, type(kernel))
    assert set(nnx.to_flat_state(frozen).paths) == {("fc", "kernel"), ("scale",)}
    # an optimizer over Param sees the declared kinds too (they are Params)
    assert ("fc", "kernel") in nnx.to_flat_state(nnx.state(model, nnx.Param)).paths
    report = nnx_build.check(KINDS)
    assert report.params == {"BatchStat": 4, "Deeper": 4, "Frozen": 12, "Param": 3}
    x = jnp.arange(8.0).reshape(2, 4)
    np.testing.assert_allclose(model(x), x @ kernel[...] + model.fc.bias[...], rtol=1e-6)


def test_sharding_names_become_partition_specs() -> None:
    model = nnx_build.build(KINDS)
    specs = nnx.get_partition_spec(nnx.state(model))
    assert tuple(specs["fc"]["kernel"].get_value()) == ("embed", "mlp")
    assert tuple(specs["scale"].get_value()) == ("embed",)


def test_several_outputs_and_a_method_running_part_of_the_graph() -> None:
    model = nnx_build.build(TWO_OUTPUTS)
    x, y = jnp.ones((2, 3)), jnp.full((2, 3), 2.0)
    c, a = model(x, y)
    assert c.shape == (2, 7) and a.shape == (2, 2)
    np.testing.assert_allclose(c[:, :2], a)
    np.testing.assert_allclose(model.only_b(y), model.b(y))
    np.testing.assert_allclose(model(x=x, y=y)[1], a)
    with pytest.raises(TypeError, match="missing input"):
        model(x)


def test_replacing_a_submodule_changes_what_runs() -> None:
    model = nnx_build.build(TWO_OUTPUTS)
    new_b = nnx.Linear(3, 5, rngs=nnx.Rngs(7))
    model.b = new_b
    y = jnp.ones((1, 3))
    np.testing.assert_allclose(model.only_b(y), new_b(y))


def test_abstract_check_allocates_nothing_and_reports_symbolic_shapes() -> None:
    report = nnx_build.check(TWO_OUTPUTS)
    assert report.outputs == {
        "c": {"shape": ["batch", 7], "dtype": "float32"},
        "a": {"shape": ["batch", 2], "dtype": "float32"},
    }
    assert report.params == {"Param": 3 * 2 + 2 + 3 * 5 + 5}
