"""ONNX of residual conv nets: graph outputs keep their layout, max_pool with explicit padding runs.

Expected values come from JAX itself (the exporter's verification, or the flax model run
directly); the shapes are non-square where a layout swap would otherwise go unseen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

SPECS = Path(__file__).resolve().parent / "specs"


def _export_onnx(name: str, out: Path) -> dict[str, Any]:
    from nnx_build.exporters import export

    result = export(SPECS / f"{name}.yaml", out, to="onnx")
    return result.verification


@pytest.mark.slow
@pytest.mark.parametrize("name", ["onnx_residual_square", "onnx_residual_output", "max_pool_padding", "min_pool_padding", "resnet18_small"])
def test_exports_to_onnx_and_verifies(name: str, tmp_path: Path) -> None:
    """The issue's reproduction, its non-square form, max/min_pool with padding pairs, a small ResNet-18."""
    ver = _export_onnx(name, tmp_path / name)
    assert ver["status"] == "passed", ver["failures"]
    assert {(r["target"], r["batch"]) for r in ver["results"]} == {("onnx", 1), ("onnx", 7)}
    assert all(r["max_abs_err"] <= 1e-5 for r in ver["results"])


class _Residual:
    """conv + conv -> s; s + conv(s): the residual sum is the output (plain flax)."""

    def __init__(self) -> None:
        from flax import nnx

        rngs = nnx.Rngs(0)
        self.c1 = nnx.Conv(4, 8, (1, 1), rngs=rngs)
        self.c2 = nnx.Conv(4, 8, (1, 1), rngs=rngs)
        self.c3 = nnx.Conv(8, 8, (1, 1), rngs=rngs)

    def __call__(self, x: Any) -> Any:
        s = self.c1(x) + self.c2(x)
        return s + self.c3(s)


def _run(proto: Any, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {proto.graph.input[0].name: x})[0]


@pytest.mark.slow
def test_plain_flax_residual_output_is_nhwc_under_the_fixes() -> None:
    from jax2onnx import to_onnx

    from nnx_build.exporters.onnx_fixes import conversion_fixes

    model = _Residual()
    x = np.random.default_rng(0).standard_normal((2, 5, 6, 4)).astype(np.float32)
    with conversion_fixes():
        proto = to_onnx(model, [(2, 5, 6, 4)], output_names=["y"])
    assert [o.name for o in proto.graph.output] == ["y"]
    assert [d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim] == [2, 5, 6, 8]
    got = _run(proto, x)
    np.testing.assert_allclose(got, np.asarray(model(x)), atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_max_pool_lowering_pools_only_the_spatial_dims() -> None:
    import jax
    from jax2onnx import to_onnx

    from nnx_build.exporters.onnx_fixes import conversion_fixes

    def pool(x: Any) -> Any:
        return jax.lax.reduce_window(x, -np.inf, jax.lax.max, (1, 3, 2, 1), (1, 2, 1, 1), ((0, 0), (1, 1), (0, 1), (0, 0)))

    x = np.random.default_rng(1).standard_normal((2, 7, 5, 3)).astype(np.float32)
    with conversion_fixes():
        proto = to_onnx(pool, [(2, 7, 5, 3)])
    (max_pool,) = [n for n in proto.graph.node if n.op_type == "MaxPool"]
    kernel = next(a.ints for a in max_pool.attribute if a.name == "kernel_shape")
    assert list(kernel) == [3, 2]
    # numpy: pad with -inf, then a sliding-window max
    padded = np.pad(x, ((0, 0), (1, 1), (0, 1), (0, 0)), constant_values=-np.inf)
    want = np.stack(
        [np.stack([padded[:, i : i + 3, j : j + 2].max(axis=(1, 2)) for j in range(padded.shape[2] - 1)], 1) for i in range(0, padded.shape[1] - 2, 2)],
        1,
    )
    np.testing.assert_array_equal(_run(proto, x), want)


@pytest.mark.slow  # loading the jax2onnx plugins takes seconds
def test_the_converter_is_restored_after_the_block() -> None:
    from jax2onnx.converter import conversion_api
    from jax2onnx.converter.ir_builder import IRBuilder
    from jax2onnx.plugins import plugin_system
    from jax2onnx.plugins.flax.linen.pool import PoolPlugin

    from nnx_build.exporters.onnx_fixes import conversion_fixes, load_plugins

    load_plugins()
    optimize = conversion_api.optimize_graph
    pool = plugin_system.PLUGIN_REGISTRY["reduce_window_max"]
    flax_pool = PoolPlugin.__dict__["get_monkey_patch"]
    add_initializer = IRBuilder.__dict__["add_initializer_from_scalar"]
    assert "reduce_window_min" not in plugin_system.PLUGIN_REGISTRY
    with pytest.raises(RuntimeError, match="inside"), conversion_fixes():
        assert conversion_api.optimize_graph is not optimize
        assert plugin_system.PLUGIN_REGISTRY["reduce_window_max"] is not pool
        assert "reduce_window_min" in plugin_system.PLUGIN_REGISTRY
        assert PoolPlugin.__dict__["get_monkey_patch"] is not flax_pool
        assert IRBuilder.__dict__["add_initializer_from_scalar"] is not add_initializer
        raise RuntimeError("inside")
    assert conversion_api.optimize_graph is optimize
    assert plugin_system.PLUGIN_REGISTRY["reduce_window_max"] is pool
    assert PoolPlugin.__dict__["get_monkey_patch"] is flax_pool
    assert IRBuilder.__dict__["add_initializer_from_scalar"] is add_initializer
    assert "reduce_window_min" not in plugin_system.PLUGIN_REGISTRY
