"""ONNX export memory: the conversion holds no second copy of the weights.

Copies used to add up on top of the built model: the repeats' weights sliced out of their
stack as new arrays (the converter's constants), the kernels the converter reshapes copied
by its float32 cast, a whole ``ModelProto`` holding every weight before the file was
written, and onnxruntime's load check prepacking every weight. The first two are seen in
the converted model's initializers (sharing the built weights' memory, or not), the third
in what reaches ``onnx.save``, the last in a fresh process's peak.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

# 640x640 float32 kernels are 1.6 MB each: over the 1 MiB from which weights go to NAME.onnx.data
SPEC = """\
format: 1
name: onnx_memory
args: {d: 640}
dims: {batch: 1}
inputs:
  x: {shape: [batch, "${d}"], dtype: float32}
blocks:
  Dense:
    args: {d: int}
    inputs: [x]
    layers:
      - fc: {type: Linear, in_features: "${d}", out_features: "${d}", in: x}
      - {type: tanh}
layers:
  - h: {type: Dense, repeat: 2, scan: true, d: "${d}", in: x}
  - head: {type: Linear, in_features: "${d}", out_features: 3}
"""


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx_memory") / "onnx_memory.yaml"
    path.write_text(SPEC)
    return path


@pytest.fixture(scope="module")
def model(spec: Path) -> Any:
    import nnx_build

    return nnx_build.build(spec)


def _raw_bytes(proto: Any) -> int:
    """Bytes of tensor data held inside a ``ModelProto`` (not in external data)."""
    return sum(len(t.raw_data) + 4 * len(t.float_data) for t in proto.graph.initializer)


@pytest.fixture(scope="module")
def exported(model: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """The model exported to ONNX (no verification process), and the weight bytes of every
    proto handed to ``onnx.save`` / ``onnx.save_model`` on the way."""
    import onnx

    from nnx_build.exporters import export

    held: list[int] = []
    save, save_model = onnx.save, onnx.save_model

    def spy_save(proto: Any, *args: Any, **kwargs: Any) -> Any:
        held.append(_raw_bytes(proto))
        return save(proto, *args, **kwargs)

    def spy_save_model(proto: Any, *args: Any, **kwargs: Any) -> Any:
        held.append(_raw_bytes(proto))
        return save_model(proto, *args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(onnx, "save", spy_save)
    mp.setattr(onnx, "save_model", spy_save_model)
    try:
        out = tmp_path_factory.mktemp("onnx_memory_export") / "x"
        export(model, out, to="onnx", verify=False)
    finally:
        mp.undo()
    return out, held


def test_the_weights_are_streamed_to_the_data_file_not_held_in_a_proto(exported: tuple[Path, list[int]]) -> None:
    out, held = exported
    assert held, "nothing was saved through onnx.save / onnx.save_model"
    # the two kernels (1.6 MB each) never sit in a serialised proto; the biases and the head (under 1 MiB) may
    assert max(held) < 1 << 20, held
    data = out / "onnx" / "main.onnx.data"
    assert data.stat().st_size >= 2 * 640 * 640 * 4  # the two stacked 640x640 kernels
    assert (out / "onnx" / "main.onnx").stat().st_size < 1 << 20


def test_the_file_computes_the_forward_written_in_numpy(model: Any, exported: tuple[Path, list[int]]) -> None:
    """onnxruntime on the streamed file against the network written out by hand from the weights."""
    import onnxruntime as ort

    from nnx_build.fastpath import flat_weights

    out, _ = exported
    w = {k: np.asarray(v) for k, v in flat_weights(model).items()}
    kernels = sorted(k for k in w if k.startswith("h/") and k.endswith("kernel"))
    assert len(kernels) == 1 and w[kernels[0]].shape == (2, 640, 640), list(w)  # the stack
    x = np.random.default_rng(0).standard_normal((4, 640)).astype(np.float32)
    h = x
    for i in range(2):
        h = np.tanh(h @ w["h/fc/kernel"][i] + w["h/fc/bias"][i])
    want = h @ w["head/kernel"] + w["head/bias"]
    session = ort.InferenceSession(str(out / "onnx" / "main.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


ATTENTION = """\
format: 1
name: onnx_memory_attention
args: {d: 32}
dims: {batch: 1, seq: 3}
inputs:
  x: {shape: [batch, seq, "${d}"], dtype: float32}
blocks:
  Block:
    args: {d: int}
    inputs: [x]
    layers:
      - ln: {type: LayerNorm, num_features: "${d}", in: x}
      - attn: {type: MultiHeadAttention, num_heads: 2, in_features: "${d}", in: {inputs_q: ln}}
      - h: {type: add, in: [x, attn]}
      - fc: {type: Linear, in_features: "${d}", out_features: "${d}"}
layers:
  - h: {type: Block, repeat: 2, scan: true, d: "${d}", in: x}
"""


def test_the_converted_models_weights_share_the_built_weights_memory(tmp_path: Path) -> None:
    """Every weight-sized initializer the converter hands to the writer is the built weight's
    own memory: no sliced repeat, no cast or reshaped copy (attention kernels are reshaped)."""
    import onnx_ir

    import nnx_build
    from nnx_build.exporters import export
    from nnx_build.fastpath import flat_weights

    spec = tmp_path / "attention.yaml"
    spec.write_text(ATTENTION)
    model = nnx_build.build(spec)
    weights = [np.asarray(v) for v in flat_weights(model).values() if np.asarray(v).dtype == np.float32]
    seen: dict[str, bool] = {}
    save = onnx_ir.save

    def spy(ir_model: Any, *args: Any, **kwargs: Any) -> Any:
        for name, value in ir_model.graph.initializers.items():
            array = value.const_value.numpy()
            if array.dtype == np.float32 and array.size >= 32 * 32:  # the kernels (biases and scales are 32)
                seen[name] = any(np.shares_memory(array, w) for w in weights)
        return save(ir_model, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(onnx_ir, "save", spy)
        export(model, tmp_path / "x", to="onnx", verify=False)
    # per copy: query, key, value, out and fc kernels
    assert len(seen) == 2 * 5, seen
    copies = sorted(name for name, shared in seen.items() if not shared)
    assert not copies, f"initializers copied from the weights: {copies}"


def test_the_unrolled_repeats_constants_are_views_of_the_stacked_weights(model: Any) -> None:
    """What the converter traces (the forward with scans unrolled): each repeat's kernel is a
    constant sharing the stack's memory, so converting it copies none of the stacked weights."""
    import jax

    import nnx_build
    from nnx_build.builder.unroll import unrolled_scans

    ff = nnx_build.fast_forward(model)
    stack = np.asarray(ff.weights["h/fc/kernel"])
    with unrolled_scans():
        consts = jax.make_jaxpr(ff.closed())(np.zeros((1, 640), np.float32)).consts
    kernels = [c for c in consts if np.shape(c) == (640, 640)]
    assert len(kernels) == 2, [np.shape(c) for c in consts]
    for i, c in enumerate(kernels):
        shared = bool(np.shares_memory(np.asarray(c), stack))
        assert shared, f"repeat {i}'s kernel is a copy of the stack"
        np.testing.assert_array_equal(np.asarray(c), stack[i])


LOAD_CHECK = """
import sys, types
from pathlib import Path

from nnx_build.exporters.onnx import _check_runtime

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))

import onnxruntime  # imported before the baseline: its import is not the check's
base = status("VmRSS")
_check_runtime(types.SimpleNamespace(name="main"), Path(sys.argv[1]))
print(status("VmHWM") - base)
"""


def test_the_load_check_does_not_copy_the_external_weights(tmp_path: Path) -> None:
    """onnxruntime's load check of a file with 64 MiB of external weights: a fresh process's
    peak grows by much less than the weights (prepacking would copy every MatMul weight)."""
    import subprocess
    import sys

    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n = 4096
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((n, n)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n])], [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    path = tmp_path / "main.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, location="main.onnx.data", size_threshold=1 << 20)
    del model, graph, w
    assert (tmp_path / "main.onnx.data").stat().st_size == n * n * 4
    grew = int(subprocess.run([sys.executable, "-c", LOAD_CHECK, str(path)], capture_output=True, text=True, check=True).stdout)
    assert grew < n * n * 4 // 4, f"the load check grew the process by {grew / 2**20:.0f} MiB for 64 MiB of weights"
