"""Every seed spec exports to StableHLO, SavedModel and ONNX and verifies against JAX."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from static_shapes import module_text

import nnx_build

SEED = Path(__file__).resolve().parents[2] / "specs" / "seed"
ENTRIES = {"model": ["main"], "block": ["main"], "autoencoder": ["main", "encode"]}
INPUT_DIM = {"model": 2, "block": 10, "autoencoder": 2}

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["model", "block", "autoencoder"])
def test_exports_all_targets_and_verifies(exports: Any, name: str) -> None:
    manifest = exports.manifest(name)
    ver = manifest["verification"]
    assert ver["status"] == "passed", ver
    assert ver["batch_sizes"] == [1, 7]
    seen = {(r["target"], r["entry"], r["batch"]) for r in ver["results"]}
    for target in ("stablehlo", "stablehlo-mlir", "savedmodel", "onnx"):
        for entry in ENTRIES[name]:
            for b in (1, 7):
                assert (target, entry, b) in seen
    assert all(r["ok"] and r["max_abs_err"] <= 1e-5 for r in ver["results"])
    assert not list(exports.root.glob(f".{name}.*")), "temporary folders left behind"


@pytest.mark.parametrize("name", ["model", "block", "autoencoder"])
def test_manifest(exports: Any, name: str) -> None:
    out = exports(name)
    manifest = exports.manifest(name)
    spec = SEED / f"{name}.yaml"
    assert manifest["spec"]["sha256"] == hashlib.sha256(spec.read_bytes()).hexdigest()
    assert manifest["spec"]["name"] == nnx_build.load_spec(spec).name
    for lib in ("jax", "jaxlib", "flax", "tensorflow", "jax2onnx", "onnxruntime"):
        assert manifest["versions"][lib], lib
    assert [e["name"] for e in manifest["entries"]] == ENTRIES[name]
    main = manifest["entries"][0]
    assert main["inputs"] == [{"name": "x", "shape": ["batch", INPUT_DIM[name]], "dtype": "float32"}]
    assert main["outputs"][0]["shape"][0] == "batch" and main["outputs"][0]["dtype"] == "float32"
    listed = {f["path"]: f for f in manifest["files"]}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(listed) == on_disk
    for rel, f in listed.items():
        data = (out / rel).read_bytes()
        assert f["size"] == len(data) and f["sha256"] == hashlib.sha256(data).hexdigest()
    assert {"stablehlo/main.mlirbc", "stablehlo/main.jax_export", "onnx/main.onnx", "savedmodel/1/saved_model.pb"} <= on_disk


def test_autoencoder_method_artifacts(exports: Any) -> None:
    manifest = exports.manifest("autoencoder")
    files = {f["path"] for f in manifest["files"]}
    assert {"stablehlo/encode.mlirbc", "stablehlo/encode.jax_export", "onnx/encode.onnx"} <= files
    encode = manifest["entries"][1]
    assert encode["signature"] == "encode" and encode["outputs"][0]["name"] == "encoder"
    assert encode["outputs"][0]["shape"] == ["batch", 10]


@pytest.mark.parametrize("name", ["model", "autoencoder"])
def test_savedmodel_signatures(exports: Any, tf: Any, name: str) -> None:
    loaded = tf.saved_model.load(str(exports(name) / "savedmodel" / "1"))
    sig = loaded.signatures["serving_default"]
    _, inputs = sig.structured_input_signature
    assert list(inputs) == ["x"]
    assert inputs["x"].shape.as_list() == [None, INPUT_DIM[name]]
    out_name = exports.manifest(name)["entries"][0]["outputs"][0]["name"]
    assert list(sig.structured_outputs) == [out_name]
    x = np.random.default_rng(1).standard_normal((3, INPUT_DIM[name])).astype(np.float32)
    model = nnx_build.build(SEED / f"{name}.yaml")
    want = np.asarray(nnx_build.fast_forward(model)(x))
    np.testing.assert_allclose(sig(x=tf.constant(x))[out_name].numpy(), want, rtol=1e-5, atol=1e-5)
    if name == "autoencoder":
        enc = loaded.signatures["encode"]
        np.testing.assert_allclose(enc(x=tf.constant(x))["encoder"].numpy(), np.asarray(model.encode(x)), rtol=1e-5, atol=1e-5)


def test_saved_model_cli_lists_serving_default(exports: Any) -> None:
    cli = Path(sys.executable).with_name("saved_model_cli")
    cmd = [str(cli)] if cli.exists() else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    proc = subprocess.run(
        [*cmd, "show", "--dir", str(exports("model") / "savedmodel" / "1"), "--all"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "signature_def['serving_default']" in proc.stdout
    assert "inputs['x']" in proc.stdout and "shape: (-1, 2)" in proc.stdout
    assert "outputs['linear_out']" in proc.stdout


@pytest.mark.parametrize("name", ["model", "block", "autoencoder"])
def test_mlir_main_takes_only_the_inputs(exports: Any, name: str) -> None:
    for entry in ENTRIES[name]:
        text = module_text(exports(name) / "stablehlo" / f"{entry}.mlirbc")
        m = re.search(r"func\.func public @main\((.*?)\)\s*->", text)
        assert m is not None
        args = re.findall(r"%arg\d+:", m.group(1))
        assert len(args) == 1, m.group(1)
        assert "tensor<?x" in m.group(1)  # the batch dim stays dynamic
        assert "shape_assertion" not in text


def test_jax_export_artifact_reloads(exports: Any) -> None:
    from jax import export

    model = nnx_build.build(SEED / "autoencoder.yaml")
    x = np.random.default_rng(2).standard_normal((4, 2)).astype(np.float32)
    for entry, want in (("main", model(x)), ("encode", model.encode(x))):
        exp = export.deserialize(bytearray((exports("autoencoder") / "stablehlo" / f"{entry}.jax_export").read_bytes()))
        np.testing.assert_allclose(np.asarray(exp.call(x)), np.asarray(want), rtol=1e-5, atol=1e-6)


def test_onnx_batch_dimension_is_dynamic(exports: Any) -> None:
    import onnx

    proto = onnx.load(str(exports("block") / "onnx" / "main.onnx"))
    (inp,) = proto.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert inp.name == "x" and dims[0].dim_param == "batch" and dims[1].dim_value == 10


def test_verify_command_reverifies(exports: Any) -> None:
    from nnx_build.cli import main

    out = exports("block")
    assert main(["verify", str(out), "--batch-sizes", "2,5"]) == 0
    ver = exports.manifest("block")["verification"]
    assert ver["status"] == "passed" and ver["batch_sizes"] == [2, 5]


def test_verify_reports_a_mismatch(exports: Any, tmp_path: Path, capsys: Any) -> None:
    from nnx_build.cli import main
    from nnx_build.weights import save_weights

    out = tmp_path / "block"
    shutil.copytree(exports("block"), out)
    other = tmp_path / "other.npz"
    save_weights(nnx_build.build(SEED / "block.yaml", seed=5), other)
    assert main(["verify", str(out), "--weights", str(other)]) == 2
    err = capsys.readouterr().err
    assert "verification failed" in err and "differs from JAX" in err
    assert (out / "manifest.json").exists()


def test_weights_file_weights_as_args_and_platforms(tmp_path: Path) -> None:
    from jax import export as jax_export

    from nnx_build.exporters import export
    from nnx_build.weights import save_weights

    trained = nnx_build.build(SEED / "autoencoder.yaml", seed=3)
    weights = tmp_path / "w.npz"
    save_weights(trained, weights)
    out = tmp_path / "out"
    result = export(SEED / "autoencoder.yaml", out, to="stablehlo", weights=weights, weights_as_args=True, platforms="cpu,cuda")
    assert result.verification["status"] == "passed"
    assert result.manifest["weights"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert (out / "stablehlo" / "main.cuda.mlirbc").exists() and (out / "stablehlo" / "weights.npz").exists()
    exp = jax_export.deserialize(bytearray((out / "stablehlo" / "encode.jax_export").read_bytes()))
    assert set(exp.platforms) == {"cpu", "cuda"}
    with np.load(out / "stablehlo" / "weights.npz") as w:
        w = {k: w[k] for k in w.files}
    x = np.ones((2, 2), np.float32)
    np.testing.assert_allclose(np.asarray(exp.call(w, x)), np.asarray(trained.encode(x)), rtol=1e-5, atol=1e-6)
    text = module_text(out / "stablehlo" / "main.mlirbc")
    header = re.search(r"func\.func public @main\((.*?)\)\s*->", text).group(1)
    assert len(re.findall(r"%arg\d+:", header)) == len(w) + 1


MIXED = """\
format: 1
name: mixed
seed: 2
args: {vocab: 50, embed: 8, hidden: 6}
dims: {batch: 2, time: 5}
inputs:
  tokens: {shape: [batch, time], dtype: int32}
  feats: {shape: [batch, time, 3]}
layers:
  - embed: {type: Embed, num_embeddings: "${vocab}", features: "${embed}", in: tokens}
  - lstm: {type: RNN, cell: {type: LSTMCell, in_features: "${embed}", hidden_features: "${hidden}"}}
  - last: {type: index, axis: 1, index: -1}
  - head: {type: Linear, in_features: "${hidden}", out_features: 3}
  - proj: {type: Linear, in_features: 3, out_features: 4, in: feats}
  - both: {type: concat, axis: -1, in: [proj, feats]}
  - norm: {type: LayerNorm, num_features: 7}
outputs: [head, norm]
"""


def test_two_inputs_two_outputs_int_input_and_a_scanned_rnn(tmp_path: Path, tf: Any) -> None:
    """Named dims beyond batch, an int input, an RNN (RNG state in a scan carry, pruned for ONNX)."""
    import onnx

    from nnx_build.exporters import export

    spec = tmp_path / "mixed.yaml"
    spec.write_text(MIXED)
    out = tmp_path / "out"
    result = export(spec, out)
    assert result.verification["status"] == "passed", result.verification
    assert {r["output"] for r in result.verification["results"]} == {"head", "norm"}
    (entry,) = result.manifest["entries"]
    assert [i["shape"] for i in entry["inputs"]] == [["batch", "time"], ["batch", "time", 3]]
    assert [o["shape"] for o in entry["outputs"]] == [["batch", 3], ["batch", "time", 7]]
    sig = tf.saved_model.load(str(out / "savedmodel" / "1")).signatures["serving_default"]
    _, inputs = sig.structured_input_signature
    assert inputs["tokens"].shape.as_list() == [None, None] and inputs["tokens"].dtype == tf.int32
    assert sorted(sig.structured_outputs) == ["head", "norm"]
    proto = onnx.load(str(out / "onnx" / "main.onnx"))
    assert [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input] == [
        ["batch", "time"], ["batch", "time", 3]
    ]


@pytest.mark.parametrize("name", ["cnn", "residual"])
def test_example_specs_export_all_targets_and_verify(export_root: Path, name: str) -> None:
    """The CNN (pooling) and residual (repeat, scan, declared kind) examples on every target."""
    from nnx_build.exporters import export

    out = export_root / f"example-{name}"
    export(SEED.parent / f"{name}.yaml", out, to="stablehlo,savedmodel,onnx")
    import json

    ver = json.loads((out / "manifest.json").read_text())["verification"]
    assert ver["status"] == "passed", ver
    targets = {(r["target"], r["batch"]) for r in ver["results"]}
    for target in ("stablehlo", "savedmodel", "onnx"):
        assert {(target, 1), (target, 7)} <= targets
    assert all(r["ok"] and r["max_abs_err"] <= 1e-5 for r in ver["results"])
