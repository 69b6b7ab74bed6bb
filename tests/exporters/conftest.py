"""Exported folders are shared by the whole session: each seed spec is exported once."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "specs" / "seed"
SEED_SPECS = ("model", "block", "autoencoder")


@pytest.fixture(scope="session")
def tf() -> Any:
    """TensorFlow, imported once per session (it takes seconds)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow

    return tensorflow


@pytest.fixture(scope="session")
def export_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exports")


class Exports:
    """Exports each seed spec to all three targets, verified, on first request."""

    def __init__(self, root: Path):
        self.root = root
        self.dirs: dict[str, Path] = {}

    def __call__(self, name: str) -> Path:
        if name not in self.dirs:
            out = self.root / name
            spec = SEED / f"{name}.yaml"
            if name == "model":
                # the model goes through the command line, the others through the API
                from nnx_build.cli import main

                code = main(["export", str(spec), "--to", "stablehlo,savedmodel,onnx", "--out", str(out)])
                assert code == 0
            else:
                from nnx_build.exporters import export

                export(spec, out, to="stablehlo,savedmodel,onnx")
            self.dirs[name] = out
        return self.dirs[name]

    def manifest(self, name: str) -> dict[str, Any]:
        return json.loads((self(name) / "manifest.json").read_text())


@pytest.fixture(scope="session")
def exports(export_root: Path) -> Exports:
    return Exports(export_root)
