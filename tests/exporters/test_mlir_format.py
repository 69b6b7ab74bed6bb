"""StableHLO's module file: a portable artifact ``NAME.mlirbc`` by default, ``NAME.mlir`` text with ``--mlir-text``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from static_shapes import main_signature, module_text, portable_artifact

from nnx_build.cli import main
from nnx_build.exporters import VerificationError, export, verify_dir
from nnx_build.exporters.stablehlo import portable_version

# 34,052 float32 parameters: enough weights that the file sizes are about them
WIDE = """\
format: 1
name: wide
seed: 0
inputs:
  x: [batch, 128]
layers:
  - a: {type: Linear, in_features: 128, out_features: 256}
  - b: {type: Linear, in_features: 256, out_features: 4}
outputs: [b]
"""
WEIGHT_BYTES = 4 * (128 * 256 + 256 + 256 * 4 + 4)
#: the random kernels (the zero biases are splat constants: a few bytes each)
KERNEL_BYTES = 4 * (128 * 256 + 256 * 4)


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wide") / "wide.yaml"
    path.write_text(WIDE)
    return path


@pytest.fixture(scope="module")
def bytecode(spec: Path) -> Path:
    """The default export, verified."""
    out = spec.parent / "bytecode"
    assert export(spec, out, to="stablehlo", batch_sizes=(1, 3)).verification["status"] == "passed"
    return out


@pytest.fixture(scope="module")
def text(spec: Path) -> Path:
    """``nnx-build export --mlir-text``, verified."""
    out = spec.parent / "text"
    assert main(["export", str(spec), "--to", "stablehlo", "--mlir-text", "--batch-sizes", "1,3", "--out", str(out)]) == 0
    return out


def _section(out: Path) -> dict[str, Any]:
    section: dict[str, Any] = json.loads((out / "manifest.json").read_text())["artifacts"]["stablehlo"]
    return section


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _set_section(out: Path, **changes: Any) -> None:
    """Edits the manifest's StableHLO section (a value ``None`` drops the key)."""
    manifest = json.loads((out / "manifest.json").read_text())
    section = manifest["artifacts"]["stablehlo"]
    for k, v in changes.items():
        section.pop(k) if v is None else section.__setitem__(k, v)
    (out / "manifest.json").write_text(json.dumps(manifest))


def test_bytecode_is_the_default_a_portable_artifact(bytecode: Path) -> None:
    files = sorted(p.name for p in (bytecode / "stablehlo").iterdir())
    assert files == ["main.jax_export", "main.mlirbc"]
    data = (bytecode / "stablehlo" / "main.mlirbc").read_bytes()
    # MLIR bytecode's magic, a one-byte bytecode version, then the producer: StableHLO's portable artifact names its version
    assert data[:4] == b"ML\xefR"
    producer = data[5 : data.index(b"\0", 5)].decode()
    section = _section(bytecode)
    assert producer == f"StableHLO_v{section['stablehlo_version']}"
    assert section["mlir_format"] == "bytecode" and section["entries"]["main"]["mlir"] == {"cpu": "main.mlirbc"}
    # the weights are raw bytes in the file, once
    assert KERNEL_BYTES < len(data) < WEIGHT_BYTES + 8192
    ver = json.loads((bytecode / "manifest.json").read_text())["verification"]
    assert ver["status"] == "passed" and {r["target"] for r in ver["results"]} == {"stablehlo", "stablehlo-mlir"}
    module = module_text(bytecode / "stablehlo" / "main.mlirbc")
    sig = main_signature(module)
    assert sig.count("%arg") == 1 and "tensor<?x128xf32>" in sig
    # jax.export checks the dynamic batch with a shape_assertion only JAX knows: removed here too
    assert "stablehlo.custom_call" not in module


def test_mlir_text_on_request(text: Path) -> None:
    from jax._src.interpreters import mlir as jmlir
    from jax._src.lib.mlir import ir

    files = sorted(p.name for p in (text / "stablehlo").iterdir())
    assert files == ["main.jax_export", "main.mlir"]
    source = (text / "stablehlo" / "main.mlir").read_text()
    with jmlir.make_ir_context():
        module = ir.Module.parse(source)
    assert any(ir.StringAttr(op.attributes["sym_name"]).value == "main" for op in module.body.operations)
    assert "shape_assertion" not in source and "loc(" not in source
    # every constant written out in hex: two characters a byte
    assert len(source) > 2 * KERNEL_BYTES
    section = _section(text)
    assert section["mlir_format"] == "text" and "stablehlo_version" not in section
    ver = json.loads((text / "manifest.json").read_text())["verification"]
    assert ver["status"] == "passed" and "stablehlo-mlir" in {r["target"] for r in ver["results"]}


def test_both_formats_hold_the_same_module(bytecode: Path, text: Path, tmp_path: Path) -> None:
    # the text, serialized by JAX's StableHLO serializer for the recorded version, reads back as the .mlirbc does
    version = _section(bytecode)["stablehlo_version"]
    again = tmp_path / "again.mlirbc"
    again.write_bytes(portable_artifact((text / "stablehlo" / "main.mlir").read_text(), version))
    assert module_text(again) == module_text(bytecode / "stablehlo" / "main.mlirbc")


def test_portable_version_reads_the_header() -> None:
    assert portable_version(b"ML\xefR\x0dStableHLO_v1.15.0\x00\x01") == "1.15.0"
    # a two-byte version varint (its first byte ends in one zero bit)
    assert portable_version(b"ML\xefR\x02\x01StableHLO_v2.0.1\x00") == "2.0.1"
    assert portable_version(b"ML\xefR\x0dMLIR23.0.0git\x00\x01") is None
    assert portable_version(b"module @m {\n}\n") is None


@pytest.mark.slow
def test_old_text_export_without_a_format_still_verifies(text: Path, tmp_path: Path) -> None:
    out = _copy(text, tmp_path / "old")
    _set_section(out, mlir_format=None)
    assert verify_dir(out).verification["status"] == "passed"


@pytest.mark.slow
def test_text_under_the_mlirbc_name_fails_verification(bytecode: Path, text: Path, tmp_path: Path) -> None:
    out = _copy(bytecode, tmp_path / "out")
    (out / "stablehlo" / "main.mlirbc").write_bytes((text / "stablehlo" / "main.mlir").read_bytes())
    with pytest.raises(VerificationError, match="main.mlirbc: not a StableHLO portable artifact"):
        verify_dir(out)


@pytest.mark.parametrize("fault", ["plain MLIR bytecode under .mlirbc", "bytecode where the manifest says text"])
def test_the_loader_refuses_a_file_not_in_the_recorded_format(bytecode: Path, text: Path, tmp_path: Path, fault: str) -> None:
    from jax._src.interpreters import mlir as jmlir
    from jax._src.lib.mlir import ir

    from nnx_build.exporters.stablehlo import TARGET

    out = _copy(bytecode, tmp_path / "out")
    if fault == "plain MLIR bytecode under .mlirbc":
        # what jax's module_to_bytecode writes: MLIR bytecode of this MLIR, which other compilers (IREE) refuse
        with jmlir.make_ir_context():
            module = ir.Module.parse((text / "stablehlo" / "main.mlir").read_text())
            (out / "stablehlo" / "main.mlirbc").write_bytes(jmlir.module_to_bytecode(module))
        why = r"main.mlirbc: not a StableHLO portable artifact \(MLIR bytecode of another producer\)"
    else:
        _set_section(out, mlir_format="text")
        why = "main.mlirbc: MLIR bytecode where the manifest records mlir_format 'text'"
    manifest = json.loads((out / "manifest.json").read_text())
    with pytest.raises(RuntimeError, match=why):
        TARGET.load(out, manifest["artifacts"]["stablehlo"], manifest["entries"][0])


@pytest.mark.slow
def test_iree_compiles_the_text_too(text: Path, tmp_path: Path) -> None:
    pytest.importorskip("iree.compiler")
    pytest.importorskip("iree.runtime")
    out = _copy(text, tmp_path / "text")
    assert main(["verify", str(out), "--runtime", "iree", "--batch-sizes", "2"]) == 0
    iree = [r for r in json.loads((out / "manifest.json").read_text())["verification"]["results"] if r["target"] == "stablehlo-iree"]
    assert iree and all(r["ok"] for r in iree)
    assert np.isfinite([r["max_abs_err"] for r in iree]).all()
