"""``--dims`` / ``dims=``: named dims fixed to concrete sizes in every target, verified there."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from static_shapes import SEQ, main_signature, module_text

from nnx_build.cli import main

# MobileNetV2's inverted residual at toy size (Sandler et al., 2018): a strided stem Conv,
# a 1x1 expansion, a depthwise 3x3 Conv (feature_group_count = channels), a linear 1x1
# projection and the residual add; global average pooling and a Linear head.
MOBILENET = """\
format: 1
name: mobilenet_tiny
seed: 0
inputs:
  x: [batch, 8, 8, 3]
blocks:
  Inverted:
    args: {c: int, e: int}
    inputs: [x]
    layers:
      - expand: {type: Conv, in_features: "${c}", out_features: "${e}", kernel_size: [1, 1], use_bias: false, in: x}
      - bn1: {type: BatchNorm, num_features: "${e}"}
      - relu6
      - dw: {type: Conv, in_features: "${e}", out_features: "${e}", kernel_size: [3, 3], feature_group_count: "${e}", use_bias: false}
      - bn2: {type: BatchNorm, num_features: "${e}"}
      - relu6
      - project: {type: Conv, in_features: "${e}", out_features: "${c}", kernel_size: [1, 1], use_bias: false}
      - bn3: {type: BatchNorm, num_features: "${c}"}
      - out: {type: add, in: [x, bn3]}
layers:
  - stem: {type: Conv, in_features: 3, out_features: 4, kernel_size: [3, 3], strides: [2, 2], use_bias: false, in: x}
  - bn: {type: BatchNorm, num_features: 4}
  - relu6
  - block: {type: Inverted, c: 4, e: 8}
  - features: global_avg_pool
  - head: {type: Linear, in_features: 4, out_features: 3}
outputs: [head]
"""



@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("static")
    spec = root / "mobilenet_tiny.yaml"
    spec.write_text(MOBILENET)
    out = root / "mobilenet"
    # IREE (a second StableHLO compiler) compiles the static .mlirbc too: the MobileNetV2 case
    code = main(["export", str(spec), "--dims", "batch=1", "--to", "stablehlo,savedmodel,onnx", "--verify-with", "iree", "--out", str(out)])
    assert code == 0
    return spec, out


@pytest.mark.slow
def test_depthwise_static_batch_verifies_in_every_target(mobilenet: tuple[Path, Path]) -> None:
    _, out = mobilenet
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["static_dims"] == {"batch": 1}
    main_entry = manifest["entries"][0]
    assert main_entry["inputs"] == [{"name": "x", "shape": [1, 8, 8, 3], "dtype": "float32"}]
    assert main_entry["outputs"][0]["shape"] == [1, 3]
    ver = manifest["verification"]
    assert ver["status"] == "passed", ver
    assert {r["target"] for r in ver["results"]} == {"stablehlo", "stablehlo-mlir", "stablehlo-iree", "savedmodel", "onnx"}
    assert all(r["ok"] and r["max_abs_err"] <= r["tolerance"] and r["dims"] == {"batch": 1} for r in ver["results"]), ver["results"]
    # nothing is left to vary: one round, at batch 1 (no batch 7)
    assert ver["sizes"] == [{}]

    mlir = module_text(out / "stablehlo" / "main.mlirbc")
    assert "feature_group_count = 8" in mlir  # the depthwise convolution is in the program
    sig = main_signature(mlir)
    types = re.findall(r"tensor<[^>]*>", sig)
    assert types and all("?" not in t for t in types), sig
    assert "tensor<1x8x8x3xf32>" in sig and "tensor<1x3xf32>" in sig


@pytest.mark.slow
def test_static_batch_in_jax_export_onnx_and_savedmodel(mobilenet: tuple[Path, Path], tf: Any) -> None:
    _, out = mobilenet
    from jax import export as jax_export

    exported = jax_export.deserialize(bytearray((out / "stablehlo" / "main.jax_export").read_bytes()))
    assert [tuple(a.shape) for a in exported.in_avals] == [(1, 8, 8, 3)]
    assert [tuple(a.shape) for a in exported.out_avals] == [(1, 3)]

    import onnx

    model = onnx.load(str(out / "onnx" / "main.onnx"))
    dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 8, 8, 3]

    loaded = tf.saved_model.load(str(out / "savedmodel" / "1"))
    _, inputs = loaded.signatures["serving_default"].structured_input_signature
    assert inputs["x"].shape.as_list() == [1, 8, 8, 3]


@pytest.mark.slow
def test_verify_dir_on_a_static_export(mobilenet: tuple[Path, Path]) -> None:
    _, out = mobilenet
    assert main(["verify", str(out)]) == 0
    ver = json.loads((out / "manifest.json").read_text())["verification"]
    assert ver["status"] == "passed" and ver["sizes"] == [{}]


@pytest.mark.slow
def test_other_dims_still_vary(tmp_path: Path) -> None:
    from nnx_build.exporters import export

    spec = tmp_path / "seq.yaml"
    spec.write_text(SEQ)
    result = export(spec, tmp_path / "out", to="stablehlo", dims={"batch": 2})
    main_entry = result.manifest["entries"][0]
    assert main_entry["inputs"][0]["shape"] == [2, "seq", 4]
    assert main_entry["outputs"][0]["shape"] == [2, "seq", 2]
    ver = result.verification
    assert ver["status"] == "passed", ver
    assert ver["sizes"] == [{"seq": 1}, {"seq": 7}]
    sig = main_signature(module_text(tmp_path / "out" / "stablehlo" / "main.mlirbc"))
    assert "tensor<2x?x4xf32>" in sig and "tensor<2x?x2xf32>" in sig


def test_unknown_dim_is_one_line_with_did_you_mean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "seq.yaml"
    spec.write_text(SEQ)
    out = tmp_path / "out"
    code = main(["export", str(spec), "--dims", "bach=1", "--to", "stablehlo", "--no-verify", "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown dim 'bach' (did you mean 'batch'?)" in err, err
    assert "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dims", "batch"], "NAME=SIZE"),
        (["--dims", "batch=0"], "NAME=SIZE"),
        (["--dims", "batch=1,batch=2"], "twice"),
        (["--dims", "batch=1", "--dims", "batch=1"], "given twice"),
        (["--dims", "batch=1", "--dims", "bach=8"], "did you mean 'batch'"),
    ],
)
def test_malformed_dims_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    spec = tmp_path / "seq.yaml"
    spec.write_text(SEQ)
    code = main(["export", str(spec), *argv, "--to", "stablehlo", "--no-verify", "--out", str(tmp_path / "out")])
    assert code == 2
    assert message in capsys.readouterr().err


def test_api_rejects_non_positive_size(tmp_path: Path) -> None:
    from nnx_build.exporters import ExportError, export

    spec = tmp_path / "seq.yaml"
    spec.write_text(SEQ)
    with pytest.raises(ExportError, match="positive integer"):
        export(spec, tmp_path / "out", to="stablehlo", verify=False, dims={"seq": -1})


def test_built_module_takes_dims(tmp_path: Path) -> None:
    import nnx_build
    from nnx_build.exporters import ExportError, export

    spec = tmp_path / "seq.yaml"
    spec.write_text(SEQ)
    model = nnx_build.build(spec)
    with pytest.raises(ExportError, match=r"unknown dim 'seqs' \(did you mean 'seq'\?\)"):
        export(model, tmp_path / "bad", to="stablehlo", verify=False, dims={"seqs": 4})
    result = export(model, tmp_path / "out", to="stablehlo", verify=False, dims={"batch": 1, "seq": 4})
    assert result.manifest["static_dims"] == {"batch": 1, "seq": 4}
    assert result.manifest["entries"][0]["inputs"][0]["shape"] == [1, 4, 4]
    sig = main_signature(module_text(tmp_path / "out" / "stablehlo" / "main.mlirbc"))
    assert "tensor<1x4x4xf32>" in sig and "tensor<1x4x2xf32>" in sig and "?" not in sig
