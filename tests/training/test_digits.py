"""The README's walk-through end to end: make digits -> train -> check accuracy -> export, verified."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import nnx_build
from nnx_build.cli import main
from nnx_build.training.data import split_indices
from nnx_build.weights import load_weights

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "specs" / "digits_cnn.yaml"


@pytest.mark.slow
def test_digits_cnn_trains_to_97_percent_and_exports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "digits.npz"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_digits.py"), str(data)], check=True, capture_output=True)
    with np.load(data) as f:
        x, y = f["x"], f["y"]
    assert x.shape == (1797, 8, 8, 1) and x.dtype == np.float32 and y.dtype == np.int32

    ckpt = tmp_path / "ckpt"
    t0 = time.perf_counter()
    assert main(["train", str(SPEC), "--data", str(data), "--out", str(ckpt), "--no-progress", "--json"]) == 0
    seconds = time.perf_counter() - t0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["epochs"] == nnx_build.load_spec(SPEC).train.epochs
    assert result["eval"]["accuracy"] >= 0.97, result
    assert seconds < 120, f"training took {seconds:.0f}s"

    # the checkpoint holds the trained model: rebuilt from it, it scores the same held-out accuracy
    model = nnx_build.build(SPEC)
    load_weights(model, ckpt)
    train_spec = nnx_build.load_spec(SPEC).train
    _, held_out = split_indices(len(y), train_spec.eval_split, train_spec.seed)
    logits = nnx_build.fast_forward(model)(x[held_out])
    accuracy = float(np.mean(np.argmax(logits, -1) == y[held_out]))
    assert accuracy == pytest.approx(result["eval"]["accuracy"], abs=1e-6)

    # nnx-build export SPEC --weights CKPT_DIR: the trained weights, verified in a fresh process
    out = tmp_path / "export"
    assert main(["export", str(SPEC), "--weights", str(ckpt), "--out", str(out), "--to", "stablehlo,savedmodel,onnx"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["verification"]["status"] == "passed"
    assert manifest["weights"]["path"] == str(ckpt.resolve())
