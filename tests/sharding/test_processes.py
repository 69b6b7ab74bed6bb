"""Two local processes x 4 simulated devices form one job (``nnx-build launch``, gloo on
127.0.0.1) and train to the same losses as one device, each process reading only the rows
its devices hold; a process that dies stops the job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from .test_sharded_train import SPEC

# a plugin that kills process 1 right after it joined the job
DIE = "import os\nif os.environ.get('JAX_PROCESS_ID') == '1':\n    os._exit(3)\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("processes")
    spec = root / "spec.yaml"
    spec.write_text(SPEC)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 16)).astype(np.float32)
    w = rng.standard_normal((16, 4)).astype(np.float32)
    np.savez(root / "data.npz", x=x, y=np.tanh(x @ w))
    (root / "die_in_process_1.py").write_text(DIE)
    return spec, root / "data.npz"


def _launch(args: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COORDINATOR")}
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(cwd), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "nnx_build.cli", "launch", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


@pytest.mark.slow
def test_two_processes_train_like_one_device(files: tuple[Path, Path]) -> None:
    from nnx_build.training import CheckpointStore, prepare

    spec, data = files
    ckpt = spec.parent / "ckpt"
    r = _launch(["-n", "2", "--devices-per-process", "4", "--", "train", str(spec), "--data", str(data),
                 "--mesh", "data=2,model=4", "--no-progress", "--json", "--out", str(ckpt)], spec.parent)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    # process 0 read only the rows its 4 devices hold: half of every batch. 3 epochs of
    # 96 training rows and 32 held-out ones (128 examples, eval_split 0.25), 4 + 16 float32 a row
    read = got["data_read"]
    assert (read["process"], read["processes"]) == (0, 2), read
    assert read["batch_rows"] == 3 * (96 + 32), read
    assert read["rows"] == read["batch_rows"] // 2, read
    assert read["bytes"] == read["rows"] * (16 + 4) * 4, read
    history = prepare(spec, data).fit(4).history  # this process: one device
    for split in ("train", "eval"):
        a, b = got[split]["loss"], history[2][split]["loss"]
        assert abs(a - b) <= 1e-5 * abs(b), (split, a, b)
    # the two processes' checkpoint continues on one device
    trainer = prepare(spec, data)
    with CheckpointStore(ckpt) as store:
        resumed = trainer.fit(4, store=store, resume=True)
    assert resumed.resumed_from == 18
    a, b = resumed.history[-1]["eval"]["loss"], history[3]["eval"]["loss"]
    assert abs(a - b) <= 1e-5 * abs(b), (a, b)


@pytest.mark.slow
def test_a_dead_process_stops_the_job(files: tuple[Path, Path]) -> None:
    spec, data = files
    start = time.monotonic()
    r = _launch(["-n", "2", "--devices-per-process", "4", "--grace", "5", "--", "train", str(spec), "--data", str(data),
                 "--mesh", "data=2,model=4", "--no-progress", "--plugin", "die_in_process_1"], spec.parent, timeout=120)
    seconds = time.monotonic() - start
    assert r.returncode != 0
    assert "process 1 of 2 exited with code 3; the others were stopped" in r.stderr
    assert seconds < 60, seconds
