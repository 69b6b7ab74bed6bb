"""Several static variants in one export: ``--dims batch=1 --dims batch=3`` (``dims=[{...}, {...}]``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from static_shapes import SEQ, main_signature, module_text

from nnx_build.cli import main

ROOT = Path(__file__).resolve().parents[2]
AUTOENCODER = ROOT / "specs" / "seed" / "autoencoder.yaml"  # __call__ and the method encode


def _signature_of(mlir: Path) -> str:
    return main_signature(module_text(mlir))


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("variants") / "ae"
    argv = ["export", str(AUTOENCODER), "--dims", "batch=1", "--dims", "batch=3", "--verify-with", "iree", "--out", str(out)]
    assert main(argv) == 0
    return out


@pytest.mark.slow
def test_one_entry_per_variant_recorded_with_its_shapes(variants: Path) -> None:
    manifest = json.loads((variants / "manifest.json").read_text())
    assert manifest["variants"] == [{"batch": 1}, {"batch": 3}] and "static_dims" not in manifest
    got = [(e["name"], e["method"], e["variant_of"], e["static_dims"], e["inputs"][0]["shape"], e["outputs"][0]["shape"]) for e in manifest["entries"]]
    assert got == [
        ("main_batch1", None, "main", {"batch": 1}, [1, 2], [1, 2]),
        ("main_batch3", None, "main", {"batch": 3}, [3, 2], [3, 2]),
        ("encode_batch1", "encode", "encode", {"batch": 1}, [1, 2], [1, 10]),
        ("encode_batch3", "encode", "encode", {"batch": 3}, [3, 2], [3, 10]),
    ]
    names = [e["name"] for e in manifest["entries"]]
    assert list(manifest["artifacts"]["stablehlo"]["entries"]) == names
    assert list(manifest["artifacts"]["onnx"]["entries"]) == names
    assert manifest["artifacts"]["savedmodel"]["signatures"] == {n: n for n in names}


@pytest.mark.slow
def test_each_variant_verified_at_its_sizes_in_every_target(variants: Path) -> None:
    ver = json.loads((variants / "manifest.json").read_text())["verification"]
    assert ver["status"] == "passed", ver["failures"]
    seen = {(r["target"], r["entry"], r["batch"]) for r in ver["results"]}
    targets = ("stablehlo", "stablehlo-mlir", "stablehlo-iree", "savedmodel", "onnx")
    assert seen == {(t, f"{e}_batch{b}", b) for t in targets for e in ("main", "encode") for b in (1, 3)}
    assert all(r["dims"] == {"batch": r["batch"]} and r["ok"] for r in ver["results"])


@pytest.mark.slow
def test_variant_shapes_in_each_artifact(variants: Path, tf: Any) -> None:
    assert "tensor<1x2xf32>" in _signature_of(variants / "stablehlo" / "main_batch1.mlirbc")
    assert "tensor<3x10xf32>" in _signature_of(variants / "stablehlo" / "encode_batch3.mlirbc")
    import onnx

    model = onnx.load(str(variants / "onnx" / "main_batch3.onnx"))
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [3, 2]
    loaded = tf.saved_model.load(str(variants / "savedmodel" / "1"))
    _, inputs = loaded.signatures["encode_batch1"].structured_input_signature
    assert inputs["x"].shape.as_list() == [1, 2]


@pytest.mark.slow
def test_verify_rebuilds_the_recorded_variants(variants: Path, tmp_path: Path) -> None:
    out = tmp_path / "ae"
    shutil.copytree(variants, out)
    assert main(["verify", str(out), "--runtime", "iree"]) == 0
    ver = json.loads((out / "manifest.json").read_text())["verification"]
    assert {r["entry"] for r in ver["results"]} == {"main_batch1", "main_batch3", "encode_batch1", "encode_batch3"}


@pytest.mark.slow
def test_api_takes_a_list_and_other_dims_still_vary(tmp_path: Path) -> None:
    from nnx_build import export

    spec = tmp_path / "seq.yaml"
    spec.write_text(SEQ)
    result = export(spec, tmp_path / "out", to="stablehlo", dims=[{"batch": 1}, {"seq": 4, "batch": 2}])
    entries = {e["name"]: e for e in result.manifest["entries"]}
    assert list(entries) == ["main_batch1", "main_batch2_seq4"]  # dims sorted by name in the entry name
    assert entries["main_batch1"]["inputs"][0]["shape"] == [1, "seq", 4]
    assert entries["main_batch2_seq4"]["inputs"][0]["shape"] == [2, 4, 4]
    assert "tensor<1x?x4xf32>" in _signature_of(tmp_path / "out" / "stablehlo" / "main_batch1.mlirbc")
    assert "tensor<2x4x4xf32>" in _signature_of(tmp_path / "out" / "stablehlo" / "main_batch2_seq4.mlirbc")
    ver = result.verification
    assert ver["status"] == "passed", ver["failures"]
    # the seq left dynamic in main_batch1 still varies; main_batch2_seq4 runs at its fixed sizes in every round
    dims = {(r["entry"], tuple(sorted(r["dims"].items()))) for r in ver["results"] if r["target"] == "stablehlo"}
    assert dims == {
        ("main_batch1", (("batch", 1), ("seq", 1))), ("main_batch1", (("batch", 1), ("seq", 7))),
        ("main_batch2_seq4", (("batch", 2), ("seq", 4))),
    }


@pytest.mark.parametrize(
    ("dims", "message"),
    [
        ([{"batch": 1}, {"batch": 1}], "given twice"),
        ([{"batch": 1}, {}], "fixes no dim"),
        ([{"batch": 1}, 8], "mapping"),
        ([{"batch": 1}, {"bach": 8}], r"unknown dim 'bach' \(did you mean 'batch'\?\)"),
    ],
)
def test_api_rejects_bad_variants(tmp_path: Path, dims: Any, message: str) -> None:
    from nnx_build.exporters import ExportError, export

    with pytest.raises(ExportError, match=message):
        export(AUTOENCODER, tmp_path / "out", to="stablehlo", verify=False, dims=dims)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_static_weights_as_args_name_the_arguments_main_kept(tmp_path: Path) -> None:
    # with static shapes jax.jit drops the weights an entry does not read: encode's @main takes the encoder's only
    from nnx_build import export

    result = export(AUTOENCODER, tmp_path / "out", to="stablehlo", dims={"batch": 2}, weights_as_args=True, verify_with="iree")
    assert result.verification["status"] == "passed", result.verification["failures"]
    files = result.manifest["artifacts"]["stablehlo"]["entries"]
    assert files["encode"]["main_arg_names"] == ["encoder/bias", "encoder/kernel", "x"]
    assert files["main"]["main_arg_names"] == ["decoder/bias", "decoder/kernel", "encoder/bias", "encoder/kernel", "x"]
    sig = _signature_of(tmp_path / "out" / "stablehlo" / "encode.mlirbc")
    assert sig.count("%arg") == 3 and "tensor<2x2xf32>" in sig
    assert {r["target"] for r in result.verification["results"]} == {"stablehlo", "stablehlo-mlir", "stablehlo-iree"}
