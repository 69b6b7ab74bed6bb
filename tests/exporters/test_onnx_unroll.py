"""ONNX export of scanned repeats: unrolled into one call per stacked copy, so the blocks come
out as the ops onnxruntime fuses (LayerNormalization, Gelu, Gemm/MatMul), never as a ``Loop``
of traced arithmetic; the export's verification compares the file with JAX."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest

SPEC = Path(__file__).resolve().parent / "specs" / "onnx_scanned_transformer.yaml"


@pytest.mark.slow
def test_scanned_blocks_export_without_a_loop(tmp_path: Path) -> None:
    """Three causal blocks with dropout (RNG streams stacked with them), a symbolic sequence length."""
    import onnx

    from nnx_build.exporters import export

    ver = export(SPEC, tmp_path / "x", to="onnx").verification
    assert ver["status"] == "passed", ver["failures"]
    assert set(ver["processes"]) == {"onnx"}  # one verification process per target
    assert {r["dims"]["seq"] for r in ver["results"]} == {2, 8}  # the sequence length varied
    ops = collections.Counter(n.op_type for n in onnx.load(str(tmp_path / "x" / "onnx" / "main.onnx")).graph.node)
    assert "Loop" not in ops and "Scan" not in ops, ops
    assert ops["LayerNormalization"] == 2 * 3 + 1, ops  # 2 per block, 3 blocks, 1 final
    assert ops["Gelu"] == 3, ops
    assert ops["Gemm"] + ops["MatMul"] >= 4 * 3, ops  # q, k, v, out projections, fc, proj per block
    assert not {"ReduceMean", "Tanh", "Pow"} & set(ops), ops


def test_unrolled_forward_equals_the_scan() -> None:
    """The same model run scanned and unrolled gives the same outputs, and unrolled traces no scan."""
    import jax

    import nnx_build
    from nnx_build.builder.unroll import unrolled_scans

    model = nnx_build.build(SPEC)
    ff = nnx_build.fast_forward(model)
    tokens = np.random.default_rng(0).integers(0, 11, (3, 6)).astype(np.int32)
    scanned = np.asarray(ff(tokens))
    with unrolled_scans():
        unrolled = np.asarray(jax.jit(ff.closed())(tokens))
        jaxpr = str(jax.make_jaxpr(ff.closed())(tokens))
    assert "scan" not in jaxpr
    assert "scan" in str(jax.make_jaxpr(ff.closed())(tokens))
    np.testing.assert_allclose(unrolled, scanned, rtol=1e-5, atol=1e-6)


def test_the_causal_mask_of_the_conversion_is_flaxs_and_is_undone() -> None:
    import jax.numpy as jnp
    from flax import nnx

    from nnx_build.exporters.onnx_fixes import conversion_fixes

    original = nnx.make_causal_mask
    x = jnp.zeros((2, 5), jnp.int8)
    with conversion_fixes():
        assert nnx.make_causal_mask is not original
        for dtype in (jnp.float32, jnp.bool_):
            patched = nnx.make_causal_mask(x, dtype=dtype)
            want = original(x, dtype=dtype)
            assert patched.dtype == want.dtype and patched.shape == want.shape == (2, 1, 5, 5)
            np.testing.assert_array_equal(np.asarray(patched), np.asarray(want))
    assert nnx.make_causal_mask is original
