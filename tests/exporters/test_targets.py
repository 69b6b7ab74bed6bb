"""The target table: a new target is one module plus one table line, and is seen everywhere.

Also: when some targets fail, the export names those that succeeded and the command that
exports just those.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import dummy_target
import pytest

from nnx_build.cli import main
from nnx_build.exporters import TARGETS, PartialExportError, VerificationError, export, verify_dir

SPEC = Path(__file__).resolve().parents[2] / "specs" / "seed" / "autoencoder.yaml"


@pytest.fixture
def with_dummy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(TARGETS, "dummy", dummy_target.TARGET)  # the one table line


def test_a_registered_target_is_in_help_verify_and_manifest(with_dummy: None, tmp_path: Path, capsys: Any) -> None:
    assert main(["export", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.replace("│", " ").split())  # the option table's borders out
    assert "Targets, comma-separated: stablehlo, savedmodel, onnx, dummy." in help_text

    out = tmp_path / "out"
    result = export(SPEC, out, to="dummy", batch_sizes=(1, 3))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["targets"] == ["dummy"]
    assert manifest["artifacts"]["dummy"]["entries"] == {"main": "main.bin", "encode": "encode.bin"}
    assert {f["path"] for f in manifest["files"]} == {"dummy/main.bin", "dummy/encode.bin"}
    checked = {(r["target"], r["entry"], r["batch"]) for r in result.verification["results"]}
    assert checked == {("dummy", e, b) for e in ("main", "encode") for b in (1, 3)}

    # verify runs the dummy's own loader: an artifact of other weights is caught
    other = tmp_path / "other"
    export(SPEC, other, to="dummy", seed=1, verify=False)
    shutil.copy(other / "dummy" / "main.bin", out / "dummy" / "main.bin")
    with pytest.raises(VerificationError, match="dummy main:decoder at batch=1 differs from JAX"):
        verify_dir(out)


def test_a_failing_conversion_names_the_targets_that_succeeded(tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(TARGETS, "broken", dummy_target.BROKEN)
    out = tmp_path / "out"
    code = main(["export", str(SPEC), "--to", "stablehlo,broken", "--out", str(out), "--batch-sizes", "2"])
    err = capsys.readouterr().err
    assert code == 2
    assert "broken: this target converts nothing" in err
    assert "stablehlo converted and verified; export just those with:" in err
    assert f"nnx-build export {SPEC} --out {out} --to stablehlo --batch-sizes 2" in err
    assert not out.exists()


def test_a_failing_verification_names_the_targets_that_passed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(TARGETS, "liar", dummy_target.LIAR)
    with pytest.raises(PartialExportError) as info:
        export(SPEC, tmp_path / "out", to="stablehlo,liar", batch_sizes=(2,))
    assert info.value.succeeded == ["stablehlo"]
    assert list(info.value.failed) == ["liar"]
    assert "liar main:decoder at batch=2 differs from JAX" in str(info.value)
    assert "export just those with to='stablehlo'" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_a_target_named_with_a_hyphen_is_reported_by_its_whole_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nnx_build.exporters.verify import target_of

    monkeypatch.setitem(TARGETS, "tf-liar", dummy_target.HYPHENATED_LIAR)
    assert [target_of(r) for r in ("tf-liar", "tf-liar-iree", "stablehlo-iree", "onnx")] == ["tf-liar", "tf-liar", "stablehlo", "onnx"]
    with pytest.raises(PartialExportError) as info:
        export(SPEC, tmp_path / "out", to="stablehlo,tf-liar", batch_sizes=(2,))
    assert info.value.succeeded == ["stablehlo"]
    assert list(info.value.failed) == ["tf-liar"]


def test_targets_are_read_from_the_table(with_dummy: None) -> None:
    from nnx_build.bench import bench_targets

    assert bench_targets() == ("fast_path", "nnx_jit", "stablehlo", "savedmodel", "onnx", "dummy")


def test_a_registered_target_is_a_spec_test_export_target(with_dummy: None) -> None:
    from nnx_build.jsonschema import spec_json_schema
    from nnx_build.schemas.tests import Export

    assert Export.model_validate({"targets": ["dummy", "onnx"]}).targets == ["dummy", "onnx"]
    items = spec_json_schema()["$defs"]["Export"]["properties"]["targets"]["items"]
    assert items["enum"] == ["stablehlo", "savedmodel", "onnx", "dummy"]


def test_an_unknown_spec_test_export_target_is_refused_with_the_table() -> None:
    from pydantic import ValidationError

    from nnx_build.schemas.tests import Export

    with pytest.raises(ValidationError, match=r"unknown export target 'onx' \(did you mean 'onnx'\?\); expected one of stablehlo, savedmodel, onnx"):
        Export.model_validate({"targets": ["onx"]})
