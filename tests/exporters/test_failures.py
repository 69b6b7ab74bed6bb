"""Failures give one clear line and leave nothing behind: no partial folder, old one untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nnx_build
from nnx_build.cli import main
from nnx_build.errors import NnxBuildError
from nnx_build.exporters import export
from nnx_build.exporters.errors import ConversionError, ExportError, OutputExistsError, WeightsError
from nnx_build.weights import save_weights

SEED = Path(__file__).resolve().parents[2] / "specs" / "seed"
SPEC = SEED / "autoencoder.yaml"


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _old_export(parent: Path) -> Path:
    out = parent / "out"
    out.mkdir(parents=True)
    (out / "marker.txt").write_text("old")
    return out


def test_existing_dir_needs_force(tmp_path: Path, capsys: Any) -> None:
    out = _old_export(tmp_path)
    assert main(["export", str(SPEC), "--out", str(out), "--to", "stablehlo"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == f"error: {out} already exists; pass --force to replace it"
    assert _listing(tmp_path) == ["out"] and _listing(out) == ["marker.txt"]


def test_force_replaces_the_old_dir(tmp_path: Path) -> None:
    out = _old_export(tmp_path)
    result = export(SPEC, out, to="stablehlo", force=True, verify=False)
    assert result.verification["status"] == "skipped"
    assert "marker.txt" not in _listing(out) and "manifest.json" in _listing(out)
    assert _listing(tmp_path) == ["out"]


def _bad_weights(tmp_path: Path) -> Path:
    model = nnx_build.build(SPEC)
    weights = dict(nnx_build.fast_forward(model).weights)
    weights["encoder/kernel"] = np.zeros((3, 10), np.float32)
    path = tmp_path / "bad.npz"
    save_weights(weights, path)
    return path


def test_weights_that_do_not_fit(tmp_path: Path, capsys: Any) -> None:
    bad = _bad_weights(tmp_path)
    out = tmp_path / "exports" / "out"
    assert main(["export", str(SPEC), "--out", str(out), "--to", "stablehlo", "--weights", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "'encoder/kernel'" in err and "(3, 10)" in err and "(2, 10)" in err
    assert _listing(out.parent) == []


def test_failure_with_force_keeps_the_old_dir(tmp_path: Path) -> None:
    bad = _bad_weights(tmp_path)
    out = _old_export(tmp_path / "exports")
    with pytest.raises(WeightsError):
        export(SPEC, out, to="stablehlo", weights=bad, force=True)
    assert _listing(out.parent) == ["out"] and _listing(out) == ["marker.txt"]


def test_weights_missing_and_unknown_keys(tmp_path: Path) -> None:
    model = nnx_build.build(SPEC)
    weights = dict(nnx_build.fast_forward(model).weights)
    del weights["decoder/bias"]
    weights["decoder/biass"] = np.zeros(2, np.float32)
    path = tmp_path / "w.npz"
    save_weights(weights, path)
    with pytest.raises(WeightsError) as info:
        export(SPEC, tmp_path / "out", to="stablehlo", weights=path)
    msg = str(info.value)
    assert "'decoder/bias' (2,) is missing" in msg and "did you mean 'decoder/bias'" in msg
    assert _listing(tmp_path) == ["w.npz"]


def test_missing_weights_file_and_unknown_target(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        export(SPEC, tmp_path / "out", weights=tmp_path / "nope.npz")
    with pytest.raises(ExportError, match="unknown export target 'onx' \\(did you mean 'onnx'\\?\\)"):
        export(SPEC, tmp_path / "out", to="stablehlo,onx")
    with pytest.raises(ExportError, match="unknown platform"):
        export(SPEC, tmp_path / "out", platforms="cpu,gpu")
    assert _listing(tmp_path) == []
    assert issubclass(OutputExistsError, NnxBuildError) and issubclass(WeightsError, NnxBuildError)


def test_unsupported_onnx_primitive_is_named(tmp_path: Path) -> None:
    import jax
    from jax.extend.core import Primitive

    from nnx_build.exporters.common import Entry, OutputInfo
    from nnx_build.exporters.onnx import export_onnx
    from nnx_build.fastpath import FastForward, InputInfo

    prim = Primitive("nnx_build_test_op")
    prim.def_impl(lambda x: x)
    prim.def_abstract_eval(lambda x: jax.core.ShapedArray(x.shape, x.dtype))
    ff = FastForward(lambda w, x: prim.bind(x), {})
    entry = Entry("main", ff, (InputInfo("x", ("batch", 2)),), (OutputInfo("y", ("batch", 2), "float32"),))
    with pytest.raises(ConversionError, match="jax2onnx cannot convert primitive 'nnx_build_test_op' used by entry 'main'"):
        export_onnx([entry], tmp_path / "onnx")
