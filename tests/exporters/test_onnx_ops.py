"""ONNX exports use the ops onnxruntime fuses: Relu, Gelu, LayerNormalization, BatchNormalization, 2-D MaxPool.

The rewrites are checked on hand-made graphs against numpy (``np.maximum``, the
definition of ``jax.nn.relu``) with the edge cases (NaN, signed zeros, infinities, float16);
the exports of small specs are checked by their op counts, and against JAX by the
export's own verification.
"""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SPECS = Path(__file__).resolve().parent / "specs"
EDGES = [np.nan, -0.0, 0.0, -1.5, 2.25, np.inf, -np.inf, 1e-30, -1e-30]


def _max_model(const: np.ndarray, *, x_dtype: Any = np.float32, const_first: bool = False, rank: int = 2) -> Any:
    """``Max(x, c)`` (or ``Max(c, x)``) with ``c`` an initializer, as an ``onnx_ir`` model."""
    import onnx_ir as ir
    from onnx import helper, numpy_helper

    elem = helper.np_dtype_to_tensor_dtype(np.dtype(x_dtype))
    inputs = ["c", "x"] if const_first else ["x", "c"]
    graph = helper.make_graph(
        [helper.make_node("Max", inputs, ["y"])],
        "g",
        [helper.make_tensor_value_info("x", elem, [None] * rank)],
        [helper.make_tensor_value_info("y", elem, None)],
        initializer=[numpy_helper.from_array(const, "c")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    proto.ir_version = 10
    return ir.serde.deserialize_model(proto)


def _run(model: Any, x: np.ndarray) -> np.ndarray:
    import onnx_ir as ir
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(ir.serde.serialize_model(model).SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _ops(model: Any) -> list[str]:
    return [n.op_type for n in model.graph]


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
@pytest.mark.parametrize("const_first", [False, True])
@pytest.mark.parametrize("zero", [0.0, -0.0])
def test_max_with_zero_becomes_relu_with_the_same_values(dtype: Any, const_first: bool, zero: float) -> None:
    from nnx_build.exporters.onnx_rewrites import rewrite

    model = _max_model(np.array(zero, dtype), x_dtype=dtype, const_first=const_first)
    assert rewrite(model) == {"Relu": 1}
    assert _ops(model) == ["Relu"]
    assert [v.name for v in model.graph.outputs] == ["y"]
    x = np.array([EDGES, EDGES[::-1]], dtype)
    got = _run(model, x)
    assert got.dtype == dtype
    # numpy's maximum propagates NaN like JAX's max; -0.0 compares equal to 0.0 (onnxruntime's
    # Relu keeps the sign of a negative zero, which no comparison or arithmetic result but a
    # division by it tells apart)
    np.testing.assert_array_equal(got, np.maximum(x, np.array(0, dtype)))


@pytest.mark.parametrize(
    "const, x_dtype, rank, why",
    [
        (np.array(6.0, np.float32), np.float32, 2, "a clip at 6"),
        (np.array(1e-6, np.float32), np.float32, 2, "a floor at 1e-6"),
        (np.array(-1.0, np.float32), np.float32, 2, "a floor below zero"),
        (np.array([[0.0]], np.float32), np.float32, 1, "the constant adds a dim"),
        (np.zeros((1, 3), np.float32), np.float32, 2, "the constant has several elements"),
        (np.array(0, np.int32), np.int32, 2, "integers"),
    ],
)
def test_max_is_not_relu_unless_exactly_relu(const: np.ndarray, x_dtype: Any, rank: int, why: str) -> None:
    from nnx_build.exporters.onnx_rewrites import rewrite

    model = _max_model(const, x_dtype=x_dtype, rank=rank)
    assert rewrite(model) == {"Relu": 0}, why
    assert _ops(model) == ["Max"], why
    shape = (2, 3) if rank == 2 else (3,)
    x = np.resize(np.array(EDGES if np.issubdtype(x_dtype, np.floating) else [-3, 0, 5], x_dtype), shape)
    np.testing.assert_array_equal(_run(model, x), np.maximum(x, const))


def test_relu_constant_checks_value_dtype_and_dims() -> None:
    from nnx_build.exporters.onnx_rewrites import relu_constant

    assert relu_constant(np.zeros((), np.float32), np.float32, 4)
    assert relu_constant(np.zeros((1, 1), np.float16), np.float16, 2)
    assert not relu_constant(np.zeros((), np.float16), np.float32, 4)  # dtype differs
    assert not relu_constant(np.full((), np.nan, np.float32), np.float32, 4)  # max(x, NaN) is NaN
    assert not relu_constant(np.zeros((1,), np.float32), np.float32, None)  # rank unknown: only scalars
    assert not relu_constant(None, np.float32, 2)


@pytest.mark.slow  # the converter's plugins load in seconds
def test_a_traced_jaxpr_gets_relu_through_the_rewrite() -> None:
    """The exporter's fallback (a dead-code-eliminated jaxpr) reaches no converter plugin: the rewrite gives Relu."""
    import jax
    from jax2onnx import to_onnx

    from nnx_build.exporters.onnx import pruned
    from nnx_build.exporters.onnx_fixes import conversion_fixes

    def f(x: Any) -> Any:
        return jax.nn.relu(x) * 2.0 + jax.numpy.maximum(x, 0.5)

    args = [jax.ShapeDtypeStruct((3, 4), np.float32)]
    with conversion_fixes():
        proto = to_onnx(pruned(f, args), [(3, 4)])
    ops = collections.Counter(n.op_type for n in proto.graph.node)
    assert ops["Relu"] == 1 and ops["Max"] == 1, ops  # max(x, 0.5) stays a Max
    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.resize(np.array(EDGES, np.float32), (3, 4))
    got = session.run(None, {proto.graph.input[0].name: x})[0]
    np.testing.assert_array_equal(got, np.maximum(x, 0) * 2 + np.maximum(x, 0.5))


# ---- exports of small specs ------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, dict[str, Any]]]:
    import onnx

    from nnx_build.exporters import export

    out = {}
    for name in ("onnx_ops_convnet", "onnx_ops_transformer"):
        root = tmp_path_factory.mktemp(name)
        result = export(SPECS / f"{name}.yaml", root / "x", to="onnx")
        out[name] = (onnx.load(str(root / "x" / "onnx" / "main.onnx")), result.verification)
    return out


def _attr(node: Any, name: str) -> Any:
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), None)


@pytest.mark.slow
def test_bottleneck_conv_net_exports_relu_batchnorm_and_a_2d_max_pool(exported: dict[str, tuple[Any, dict[str, Any]]]) -> None:
    proto, ver = exported["onnx_ops_convnet"]
    assert ver["status"] == "passed", ver["failures"]
    ops = collections.Counter(n.op_type for n in proto.graph.node)
    assert ops["Relu"] == 10 and ops["Max"] == 0, ops
    assert ops["BatchNormalization"] == 11 and ops["Conv"] == 11, ops
    (pool,) = [n for n in proto.graph.node if n.op_type == "MaxPool"]
    assert list(_attr(pool, "kernel_shape")) == [3, 3] and list(_attr(pool, "pads")) == [1, 1, 1, 1]


@pytest.mark.slow
def test_transformer_exports_layer_normalization_and_gelu(exported: dict[str, tuple[Any, dict[str, Any]]]) -> None:
    proto, ver = exported["onnx_ops_transformer"]
    assert ver["status"] == "passed", ver["failures"]
    ops = collections.Counter(n.op_type for n in proto.graph.node)
    assert ops["LayerNormalization"] == 5, ops  # 2 per block, 1 final
    assert not {"ReduceMean", "Sqrt", "Erf", "Tanh", "Pow", "Max"} & set(ops), ops
    gelus = sorted(_attr(n, "approximate").decode() if _attr(n, "approximate") else "none" for n in proto.graph.node if n.op_type == "Gelu")
    assert gelus == ["none", "none", "tanh"]
    assert ops["Gemm"] + ops["MatMul"] >= 2 * 6, ops  # q, k, v, out, fc1, fc2 per block


@pytest.mark.slow
def test_the_converter_loads_its_plugins_once_without_equinox_or_examples() -> None:
    """In a fresh process: two conversions, no plugin module of the Equinox or example trees imported."""
    code = """
import sys
from jax2onnx import to_onnx
from nnx_build.exporters.onnx_fixes import conversion_fixes
from jax2onnx.plugins import plugin_system
calls = []
original = plugin_system._import_tree
plugin_system._import_tree = lambda *a: (calls.append(a[1]), original(*a))
for _ in range(2):
    with conversion_fixes():
        to_onnx(lambda x: x * 2.0, [(2, 3)])
loaded = sorted({m.split('.')[2] for m in sys.modules if m.startswith('jax2onnx.plugins.') and m.count('.') >= 3})
print(calls, loaded)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300).stdout
    calls, loaded = out.strip().split("] [")
    assert calls == "['jax2onnx.plugins.jax', 'jax2onnx.plugins.flax'", out
    assert "equinox" not in loaded and "examples" not in loaded and "dm_pix" not in loaded, out
