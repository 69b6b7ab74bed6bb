"""Exports and checkpoints are written beside and renamed: a SIGKILL never damages the previous one.

A real ``nnx-build export`` (and ``nnx-build train``) runs in its own process group and is
killed with SIGKILL midway: once its temporary folder appears, and once an artifact is
written into it. The previous export (checkpoint) must be byte-identical afterwards, and
nothing partial may sit at its path: only the hidden temporary folder the killed run
was writing (``.OUT.*.tmp``, ``<step>.orbax-checkpoint-tmp-*``), which is never taken
for an export or a checkpoint.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "specs" / "seed" / "model.yaml"
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


def tree_hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def nnx_build(*args: str) -> list[str]:
    return [sys.executable, "-m", "nnx_build.cli", *args]


def kill_when(cmd: list[str], ready, timeout: float = 240) -> float:
    """Starts ``cmd`` in its own process group and SIGKILLs the group once ``ready()``; returns when."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, start_new_session=True)
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < timeout:
            if ready():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
                return time.monotonic() - t0
            if proc.poll() is not None:
                pytest.fail(f"the run finished (exit {proc.returncode}) before it could be killed midway")
            time.sleep(0.005)
        pytest.fail("the run never reached the point to kill it at")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    return 0.0


@pytest.fixture(scope="module")
def first_export(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    base = tmp_path_factory.mktemp("exports")
    out = base / "model"
    subprocess.run(nnx_build("export", str(SPEC), "--to", "stablehlo", "--out", str(out)), check=True, env=ENV,
                   capture_output=True, timeout=300)
    return out, tree_hashes(out)


def _temps(out: Path) -> list[Path]:
    return [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["temp folder created", "artifact written"])
def test_killed_export_leaves_the_previous_export_byte_identical(first_export, moment: str) -> None:
    out, before = first_export
    for stale in _temps(out):  # from an earlier kill in this module
        shutil.rmtree(stale)

    def ready() -> bool:
        temps = [p for p in _temps(out) if p.name.endswith(".tmp")]
        if moment == "temp folder created":
            return bool(temps)
        return any(f.is_file() and f.stat().st_size > 0 for t in temps for f in t.rglob("*.mlirbc"))

    # a different seed: different weights, so a half-replaced export would show
    kill_when(nnx_build("export", str(SPEC), "--to", "stablehlo,onnx", "--out", str(out), "--force", "--seed", "7"), ready)
    assert tree_hashes(out) == before
    leftovers = _temps(out)
    assert all(p.name.endswith((".tmp", ".old")) and p.name.startswith(f".{out.name}.") for p in leftovers), leftovers
    # the export still verifies (on a copy: verify records its result in the manifest)
    copy = out.parent / f"verified-{moment.replace(' ', '-')}"
    shutil.copytree(out, copy)
    proc = subprocess.run(nnx_build("verify", str(copy)), env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_existing_export_needs_force(first_export) -> None:
    out, before = first_export
    proc = subprocess.run(nnx_build("export", str(SPEC), "--to", "stablehlo", "--out", str(out), "--no-verify"),
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "already exists; pass --force" in proc.stderr
    assert tree_hashes(out) == before


TRAIN_SPEC = """
format: 1
name: reg
seed: 0
inputs: {x: [batch, 2]}
layers:
  - linear: {type: Linear, in_features: 2, out_features: 64}
  - relu
  - out: {type: Linear, in_features: 64, out_features: 3}
train:
  loss: mean_squared_error
  optimizer: {type: adam, learning_rate: 1e-3}
  batch_size: 8
  epochs: 2
"""


@pytest.mark.slow
def test_killed_training_leaves_the_previous_checkpoints_byte_identical(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 2)).astype(np.float32)
    data = tmp_path / "data.npz"
    np.savez(data, x=x, y=(x @ rng.standard_normal((2, 3))).astype(np.float32))
    spec = tmp_path / "reg.yaml"
    spec.write_text(TRAIN_SPEC, encoding="utf-8")
    ckpt = tmp_path / "ckpt"
    base = ["train", str(spec), "--data", str(data), "--out", str(ckpt), "--no-progress"]
    subprocess.run(nnx_build(*base), check=True, env=ENV, capture_output=True, timeout=300)
    steps_before = sorted(p.name for p in ckpt.iterdir() if p.name.isdigit())
    assert steps_before and {p.name for p in ckpt.iterdir()} - set(steps_before) == {"metrics.jsonl"}
    before = {k: v for k, v in tree_hashes(ckpt).items() if k.split("/")[0] in steps_before}

    def saving() -> bool:  # the resumed run's first save has begun
        return any("tmp" in p.name for p in ckpt.iterdir())

    kill_when(nnx_build(*base, "--resume", "--epochs", "1000"), saving)
    after = tree_hashes(ckpt)
    complete = sorted(p.name for p in ckpt.iterdir() if p.name.isdigit())
    assert complete == steps_before  # nothing partial under a step's own name
    assert {k: v for k, v in after.items() if k.split("/")[0] in steps_before} == before
    # the last complete checkpoint is what a resume or an export reads
    from nnx_build.training.checkpoint import CheckpointStore

    with CheckpointStore(ckpt) as store:
        assert str(store.latest_step()) == steps_before[-1]
