"""The example specs build, run at batch 1 and 3, and have the shapes and sizes their
arithmetic gives (computed here by hand from the spec's ``args``)."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import nnx_build

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"

# ---- expectations, by hand ------------------------------------------------------------------

# mlp.yaml: d_in 6, d_model 8, expansion 4, n_classes 3
#   body = MLP(6 -> 32 -> 8): 6*32 + 32 + 32*8 + 8 = 488
#   norm = LayerNorm(8): scale 8 + bias 8 = 16
#   head = MLP(8 -> 16 -> 3, no bias): 8*16 + 16*3 = 176
MLP_PARAMS = 488 + 16 + 176

# cnn.yaml: channels 4, classes 10, input 28x28x1
#   conv1 3x3 SAME 1 -> 4: 28x28x4 (9*1*4 + 4 = 40); max_pool 2/2: 14x14x4
#   conv2 3x3 VALID 4 -> 8: 12x12x8 (9*4*8 + 8 = 296); avg_pool 2/2: 6x6x8
#   flatten: 288; head 288 -> 10: 2880 + 10 = 2890
CNN_FLAT = 6 * 6 * 8
CNN_PARAMS = 40 + 296 + CNN_FLAT * 10 + 10

# residual.yaml: d_in 5, d 8, hidden 16, n_out 2
#   proj 5 -> 8: 48; gain: Frozen (8)
#   Residual x3: LayerNorm 16 + up 8*16+16 = 144 + h 16*8+8 = 136 -> 296 each
#   Gated x4 (scan): lin 8*8 + 8 = 72 each
#   head 8 -> 2: 18
RES_PARAMS = 48 + 3 * 296 + 4 * 72 + 18
RES_FROZEN = 8

EXAMPLES = {
    # file: (input shape after the batch dim, output shape after the batch dim, Param count)
    "mlp.yaml": ((6,), (3,), MLP_PARAMS),
    "cnn.yaml": ((28, 28, 1), (10,), CNN_PARAMS),
    "residual.yaml": ((5,), (2,), RES_PARAMS + RES_FROZEN),
}


@pytest.fixture(scope="module")
def models():
    return {name: nnx_build.build(SPECS / name) for name in EXAMPLES}


@pytest.fixture(scope="module")
def reports():
    return {name: nnx_build.check(SPECS / name) for name in EXAMPLES}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_header_points_at_the_schema(name):
    first, second = (SPECS / name).read_text().splitlines()[:2]
    prefix = "# yaml-language-server: $schema="
    assert first.startswith(prefix)
    target = (SPECS / name).parent / first[len(prefix):]
    assert target.resolve() == ROOT / "schema" / "nnx-spec.schema.json"
    assert second.startswith("# ") and len(second) > 10  # says what the spec is


@pytest.mark.parametrize("name", sorted(EXAMPLES))
@pytest.mark.parametrize("batch", [1, 3])
def test_example_runs_with_expected_shape(models, name, batch):
    in_shape, out_shape, _ = EXAMPLES[name]
    y = models[name](jnp.zeros((batch, *in_shape)))
    assert y.shape == (batch, *out_shape)
    assert y.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(y)))


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_parameter_count(models, reports, name):
    _, _, expected = EXAMPLES[name]
    params = nnx.state(models[name], nnx.Param)
    assert sum(x.size for x in jax.tree.leaves(params)) == expected
    assert reports[name].total_params == expected


def test_example_report_output_shapes(reports):
    for name, (_, out_shape, _) in EXAMPLES.items():
        (out,) = reports[name].outputs.values()
        assert out["shape"][1:] == list(out_shape)


def test_mlp_matches_a_hand_written_forward(models):
    m = models["mlp.yaml"]
    x = jax.random.normal(jax.random.key(0), (3, 6))
    h = m.body.down(nnx.gelu(m.body.up(x)))
    h = m.norm(h)
    expected = nnx.gelu(h @ m.head.up.kernel[...]) @ m.head.down.kernel[...]
    np.testing.assert_allclose(m(x), expected, rtol=1e-5, atol=1e-5)
    assert m.head.up.bias is None and m.body.up.bias is not None
    assert m.body.up.kernel.shape == (6, 32) and m.head.up.kernel.shape == (8, 16)


def test_cnn_intermediate_shapes(reports):
    shapes = {row.name: row.shape for row in reports["cnn.yaml"].rows}
    assert shapes["conv1"] == "(batch, 28, 28, 4)"
    assert shapes["pool1"] == "(batch, 14, 14, 4)"
    assert shapes["conv2"] == "(batch, 12, 12, 8)"
    assert shapes["pool2"] == "(batch, 6, 6, 8)"
    assert shapes["flat"] == f"(batch, {CNN_FLAT})"


def test_residual_structure(models):
    m = models["residual.yaml"]
    frozen = type(m.gain)
    assert frozen.__name__ == "Frozen" and issubclass(frozen, nnx.Param)
    assert sum(x.size for x in jax.tree.leaves(nnx.state(m, frozen))) == RES_FROZEN
    assert len(m.res) == 3  # repeat: 3, separate modules
    assert m.gated.lin.kernel.shape == (4, 8, 8)  # repeat: 4, scan: true, stacked
    for batch in (1, 3):
        assert m.features(jnp.zeros((batch, 5))).shape == (batch, 8)


def test_residual_forward_by_hand(models):
    m = models["residual.yaml"]
    x = jax.random.normal(jax.random.key(1), (3, 5))
    h = m.proj(x) * m.gain[...]
    for block in m.res:
        h = h + block.h(nnx.relu(block.up(block.norm(h))))
    for i in range(4):
        k, b = m.gated.lin.kernel[...][i], m.gated.lin.bias[...][i]
        h = h + jnp.tanh(h @ k + b)
    np.testing.assert_allclose(m.features(x), h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m(x), m.head(h), rtol=1e-5, atol=1e-5)
