"""Low-precision export: bfloat16 and float16 on every target.

What runs verifies against JAX; what onnxruntime cannot run stops with the fix (exit 2,
nothing written). Arrays cross the verification process in their own dtype.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from nnx_build.exporters.dtypes import as_float, load_arrays, np_dtype, save_arrays

LOW = ["bfloat16", "float16"]


def _mlp(dtype: str, input_dtype: str) -> str:
    return f"""
format: 1
name: mlp_{dtype}
dtype: {dtype}
inputs: {{x: {{shape: [batch, 6], dtype: {input_dtype}}}}}
layers:
  - fc1: {{type: Linear, in_features: 6, out_features: 8}}
  - relu
  - fc2: {{type: Linear, in_features: 8, out_features: 3}}
"""


def _conv(dtype: str) -> str:
    return f"""
format: 1
name: conv_{dtype}
dtype: {dtype}
inputs: {{x: {{shape: [batch, 6, 5, 2], dtype: {dtype}}}}}
layers:
  - c: {{type: Conv, in_features: 2, out_features: 3, kernel_size: [3, 3]}}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def _check_passed(result: Any, targets: set[str], dtype: str) -> None:
    ver = result.verification
    assert ver["status"] == "passed", ver["failures"]
    assert {r["target"] for r in ver["results"]} == targets
    assert {r["batch"] for r in ver["results"]} == {1, 7}
    (entry,) = result.manifest["entries"]
    assert [o["dtype"] for o in entry["outputs"]] == [dtype]


def test_arrays_keep_their_dtype_across_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "bf16": rng.standard_normal((2, 3)).astype(ml_dtypes.bfloat16),
        "f16": rng.standard_normal((4,)).astype(np.float16),
        "f8": rng.standard_normal((3,)).astype(ml_dtypes.float8_e4m3fn),
        "f32": rng.standard_normal((2, 2)).astype(np.float32),
        "i32": np.arange(5, dtype=np.int32),
        "b": np.array([True, False]),
        "scalar": np.array(1.5, ml_dtypes.bfloat16),
    }
    path = tmp_path / "a.npz"
    save_arrays(path, arrays)
    back = load_arrays(path)
    assert sorted(back) == sorted(arrays)
    for k, a in arrays.items():
        assert back[k].dtype == a.dtype and back[k].shape == a.shape, k
        assert back[k].tobytes() == a.tobytes(), k
    # bfloat16 keeps the top 16 bits of float32: 1.5 is exact, as_float gives it back
    assert as_float(back["scalar"]) == 1.5
    assert np_dtype("bfloat16") == np.dtype(ml_dtypes.bfloat16)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", LOW)
def test_low_precision_inputs_and_compute_verify_on_stablehlo_and_savedmodel(dtype: str, tmp_path: Path) -> None:
    from nnx_build.exporters import export

    result = export(_write(tmp_path, _mlp(dtype, dtype)), tmp_path / "out", to="stablehlo,savedmodel")
    _check_passed(result, {"stablehlo", "stablehlo-mlir", "savedmodel"}, dtype)
    (entry,) = result.manifest["entries"]
    assert [i["dtype"] for i in entry["inputs"]] == [dtype]


@pytest.mark.slow
@pytest.mark.parametrize("dtype", LOW)
def test_float32_inputs_low_precision_compute_verify_on_every_target(dtype: str, tmp_path: Path) -> None:
    from nnx_build.exporters import export

    result = export(_write(tmp_path, _mlp(dtype, "float32")), tmp_path / "out", to="stablehlo,savedmodel,onnx")
    _check_passed(result, {"stablehlo", "stablehlo-mlir", "savedmodel", "onnx"}, dtype)
    tol = {"bfloat16": 1e-2, "float16": 1e-3}[dtype]
    assert all(r["tolerance"] == tol for r in result.verification["results"])


@pytest.mark.slow
def test_float16_conv_verifies_on_onnx(tmp_path: Path) -> None:
    from nnx_build.exporters import export

    result = export(_write(tmp_path, _conv("float16")), tmp_path / "out", to="onnx")
    _check_passed(result, {"onnx"}, "float16")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dtype", "spec", "message"),
    [
        ("bfloat16", "mlp", "jax2onnx mixes tensor(bfloat16) and tensor(float) in one Gemm node when converting bfloat16"),
        ("float16", "mlp", "jax2onnx mixes tensor(float16) and tensor(float) in one Gemm node when converting float16"),
        ("bfloat16", "conv", "onnxruntime has no CPU kernel for Conv in bfloat16"),
    ],
)
def test_onnx_that_cannot_run_is_refused_with_the_fix(dtype: str, spec: str, message: str, tmp_path: Path, capsys: Any) -> None:
    from nnx_build.cli import main

    text = _mlp(dtype, dtype) if spec == "mlp" else _conv(dtype)
    path = _write(tmp_path, text)
    out = tmp_path / "out"
    assert main(["export", str(path), "--to", "onnx", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        f"error: onnx: {message} (entry 'main'); export with a float32 `dtype` in the spec for ONNX, "
        "or the other targets only with --to stablehlo,savedmodel"
    )
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]
