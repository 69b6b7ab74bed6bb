"""IREE as a second compiler in verification: ``verify --runtime iree``, ``export --verify-with iree``."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import shlex
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from static_shapes import main_signature, module_text, portable_artifact

from nnx_build.cli import main

pytest.importorskip("iree.compiler")
pytest.importorskip("iree.runtime")

ROOT = Path(__file__).resolve().parents[2]

# a depthwise convolution (feature_group_count = channels): IREE cannot legalize it with a dynamic batch
DEPTHWISE = """\
format: 1
name: depthwise_tiny
seed: 0
inputs:
  x: [batch, 6, 6, 4]
layers:
  - dw: {type: Conv, in_features: 4, out_features: 4, kernel_size: [3, 3], feature_group_count: 4}
  - features: global_avg_pool
  - head: {type: Linear, in_features: 4, out_features: 2}
outputs: [head]
"""


def _results(out: Path) -> list[dict[str, Any]]:
    return json.loads((out / "manifest.json").read_text())["verification"]["results"]


@pytest.fixture(scope="module")
def seed_copy(exports: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's example export (specs/seed/model.yaml, every target), copied: verification rewrites its manifest."""
    out = tmp_path_factory.mktemp("iree") / "model"
    shutil.copytree(exports("model"), out)
    return out


@pytest.mark.slow
def test_verify_runtime_iree_on_the_readme_export(seed_copy: Path) -> None:
    assert main(["verify", str(seed_copy), "--runtime", "iree"]) == 0
    ver = json.loads((seed_copy / "manifest.json").read_text())["verification"]
    assert ver["status"] == "passed" and ver["runtimes"] == ["iree"]
    pins = dict(ln.split("==") for ln in (ROOT / "constraints.txt").read_text().splitlines() if ln.startswith("iree-base-"))
    assert ver["runtime_versions"] == pins and len(pins) == 2  # the IREE make install pinned
    iree = [r for r in ver["results"] if r["target"] == "stablehlo-iree"]
    # IREE ran the dynamic-batch module at both verified batch sizes, within the float32 tolerance
    assert {r["batch"] for r in iree} == {1, 7}
    assert all(r["ok"] and r["max_abs_err"] <= 1e-5 for r in iree)
    assert {r["target"] for r in ver["results"]} == {"stablehlo", "stablehlo-mlir", "stablehlo-iree", "savedmodel", "onnx"}


@pytest.fixture(scope="module")
def depthwise(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int, str]:
    """The depthwise spec exported with a dynamic batch and --verify-with iree: the exit code and stderr."""
    root = tmp_path_factory.mktemp("depthwise")
    spec = root / "depthwise.yaml"
    spec.write_text(DEPTHWISE)
    out = root / "dw"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["export", str(spec), "--to", "stablehlo", "--verify-with", "iree", "--out", str(out)])
    return spec, out, code, err.getvalue()


@pytest.fixture(scope="module")
def depthwise_static(depthwise: tuple[Path, Path, int, str]) -> Path:
    """The export the refusal's command gives (batch fixed to 1), verified with IREE."""
    spec, out, _, _ = depthwise
    command = f"nnx-build export {spec} --dims batch=1 --to stablehlo --verify-with iree --out {out}-static"
    assert main(shlex.split(command)[1:]) == 0
    return Path(f"{out}-static")


@pytest.mark.slow
def test_dynamic_depthwise_refused_with_the_dims_command(depthwise: tuple[Path, Path, int, str]) -> None:
    spec, out, code, err = depthwise
    assert code == 2
    assert "Traceback" not in err
    assert "IREE (llvm-cpu) cannot compile stablehlo/main.mlirbc" in err, err
    assert "stablehlo.convolution" in err and "tensor<?x" in err and "dynamic shapes" in err, err
    assert f"nnx-build export {spec} --dims batch=1 --to stablehlo --verify-with iree --out {out}-static" in err, err
    assert not out.exists()


@pytest.mark.slow
def test_static_depthwise_compiles_in_iree_and_matches_jax(depthwise_static: Path) -> None:
    iree = [r for r in _results(depthwise_static) if r["target"] == "stablehlo-iree"]
    assert iree and all(r["ok"] and r["dims"] == {"batch": 1} and r["max_abs_err"] <= 1e-5 for r in iree)
    sig = main_signature(module_text(depthwise_static / "stablehlo" / "main.mlirbc"))
    assert "tensor<1x6x6x4xf32>" in sig and "?" not in sig


@pytest.mark.slow
def test_iree_compiles_the_mlirbc(depthwise_static: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the pooling's sum made a max in main.mlirbc: IREE's run reads that module and now differs from JAX
    out = tmp_path / "dw"
    shutil.copytree(depthwise_static, out)
    mlirbc = out / "stablehlo" / "main.mlirbc"
    text = module_text(mlirbc)
    assert "applies stablehlo.add " in text
    version = json.loads((out / "manifest.json").read_text())["artifacts"]["stablehlo"]["stablehlo_version"]
    mlirbc.write_bytes(portable_artifact(text.replace("applies stablehlo.add ", "applies stablehlo.maximum "), version))
    assert main(["verify", str(out), "--runtime", "iree"]) == 2
    assert "differs from JAX" in capsys.readouterr().err
    bad = {r["target"] for r in _results(out) if not r["ok"]}
    assert bad == {"stablehlo-iree", "stablehlo-mlir"}  # the .jax_export artifact was not changed


def _no_iree(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name.split(".")[0] == "iree" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_missing_iree_is_one_line_naming_the_extra(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    _no_iree(monkeypatch)
    spec = ROOT / "specs" / "seed" / "model.yaml"
    assert main(["export", str(spec), "--to", "stablehlo", "--verify-with", "iree", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'nnx-build[iree]'" in err and "extra 'iree'" in err, err
    assert not (tmp_path / "out").exists()

    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"targets": ["stablehlo"], "spec": {}}))
    assert main(["verify", str(folder), "--runtime", "iree"]) == 2
    assert "pip install 'nnx-build[iree]'" in capsys.readouterr().err


def test_runtime_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = ROOT / "specs" / "seed" / "model.yaml"
    assert main(["export", str(spec), "--to", "onnx", "--verify-with", "iree", "--out", str(tmp_path / "a")]) == 2
    assert "iree runs the stablehlo artifact" in capsys.readouterr().err
    assert main(["export", str(spec), "--to", "stablehlo", "--verify-with", "ire", "--out", str(tmp_path / "b")]) == 2
    assert "unknown runtime 'ire' (did you mean 'iree'?)" in capsys.readouterr().err
    assert main(["export", str(spec), "--to", "stablehlo", "--verify-with", "iree", "--no-verify", "--out", str(tmp_path / "c")]) == 2
    assert "drop --no-verify" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in "abc")


# ---- every small example and zoo spec, with --dims, compiled by IREE -----------------------

SMALL_SPECS = {
    "specs/cnn.yaml": {"batch": 1},
    "specs/digits_cnn.yaml": {"batch": 1},
    "specs/mlp.yaml": {"batch": 1},
    "specs/residual.yaml": {"batch": 1},
    "specs/seed/model.yaml": {"batch": 1},
    "specs/seed/block.yaml": {"batch": 1},
    "specs/seed/autoencoder.yaml": {"batch": 1},
    "specs/nets/attention.yaml": {"batch": 1},
    "specs/nets/conv_bn.yaml": {"batch": 1},
    "specs/nets/transformer.yaml": {"batch": 1},
    "specs/zoo/lstm_classifier.yaml": {"batch": 1, "time": 12},
    "specs/zoo/unet.yaml": {"batch": 1},
    "tests/exporters/specs/resnet18_small.yaml": {"batch": 1},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SMALL_SPECS))
def test_small_spec_with_dims_compiles_in_iree_and_matches_jax(name: str, tmp_path: Path) -> None:
    """Exported to StableHLO with static dims (no verification child: IREE runs here), compared with the built module."""
    import nnx_build
    from nnx_build.exporters import export
    from nnx_build.exporters import iree as iree_runtime
    from nnx_build.exporters.entries import integer_ranges, trace_entries
    from nnx_build.exporters.inputs import SEP, draw_inputs

    dims = SMALL_SPECS[name]
    model = nnx_build.build(ROOT / name)
    out = tmp_path / "out"
    result = export(model, out, to="stablehlo", dims=dims, verify=False)
    manifest = result.manifest
    scope = model.nnx_build_scope
    forwards = {e.name: e.ff for e in trace_entries(model, scope, dims)}
    drawn = draw_inputs(manifest["entries"], forwards, (1,), {}, integer_ranges(model, scope))
    assert drawn.sizes == [{}]  # every named dim fixed: one round at the fixed sizes
    for entry in manifest["entries"]:
        assert all(isinstance(d, int) for i in entry["inputs"] for d in i["shape"])
        run = iree_runtime.load(out, manifest["artifacts"]["stablehlo"], entry)["iree"]
        got = run([drawn.inputs[SEP.join((entry["name"], "0", i["name"]))] for i in entry["inputs"]])
        for g, w in zip(got, drawn.expected[entry["name"]][0], strict=True):
            g, w = np.asarray(g, dtype=np.float64), np.asarray(w, dtype=np.float64)
            assert g.shape == w.shape
            assert np.all(np.abs(g - w) <= 1e-5 + 1e-5 * np.abs(w)), (entry["name"], float(np.abs(g - w).max()))
