"""`import nnx_build` and `nnx-build --help` stay fast: no JAX, Flax, TensorFlow at import."""

from __future__ import annotations

import subprocess
import sys

import nnx_build

HEAVY = ("jax", "flax", "tensorflow", "onnx", "onnxruntime", "orbax", "jax2onnx")


def _imported_after(code: str) -> set[str]:
    probe = f"{code}; import sys; print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_import_nnx_build_is_light() -> None:
    assert not _imported_after("import nnx_build") & set(HEAVY)


def test_cli_module_is_light() -> None:
    assert not _imported_after("import nnx_build.cli") & set(HEAVY)


def test_public_names_resolve() -> None:
    for name in nnx_build.__all__:
        assert getattr(nnx_build, name) is not None
    assert nnx_build.build.__module__ == "nnx_build.builder"
