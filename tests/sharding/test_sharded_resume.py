"""Checkpoints restore onto another mesh: 2x4 -> 8x1, 2x4 -> one device, one device -> 2x4.

Each resumed run's last epoch must equal the uninterrupted one-device run's. The
8-device runs are in one subprocess (8 simulated CPU devices); the one-device runs here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from .test_sharded_train import SPEC

CHILD = textwrap.dedent(
    """
    import json, shutil, sys
    from nnx_build import pipeline
    from nnx_build.sharding import parse_mesh
    from nnx_build.training import CheckpointStore, prepare
    spec, data, root = sys.argv[1:4]

    def run(mesh, out, epochs, resume):
        trainer = prepare(spec, data, options=pipeline.make_options(mesh=parse_mesh(mesh)))
        with CheckpointStore(out) as store:
            result = trainer.fit(epochs, store=store, resume=resume)
        kernel = trainer.state.params["fc/kernel"]
        return {"last": result.history[-1], "kernel_shard": list(kernel.addressable_shards[0].data.shape),
                "resumed_from": result.resumed_from}

    out = {}
    run("data=2,model=4", root + "/a", 2, False)  # written on 2x4
    shutil.copytree(root + "/a", root + "/a_for_one")
    out["2x4->8x1"] = run("data=8", root + "/a", 3, True)
    out["1->2x4"] = run("data=2,model=4", root + "/b", 3, True)  # written on one device by the parent
    print(json.dumps(out))
    """
)


def _files(root: Path) -> tuple[Path, Path]:
    spec = root / "spec.yaml"
    spec.write_text(SPEC)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 16)).astype(np.float32)
    w = rng.standard_normal((16, 4)).astype(np.float32)
    np.savez(root / "data.npz", x=x, y=np.tanh(x @ w))
    return spec, root / "data.npz"


@pytest.mark.slow
def test_resume_onto_another_mesh(tmp_path: Path) -> None:
    from nnx_build.training import CheckpointStore, prepare

    spec, data = _files(tmp_path)

    def run(out: Path, epochs: int, resume: bool) -> dict:
        trainer = prepare(spec, data)
        with CheckpointStore(out) as store:
            return trainer.fit(epochs, store=store, resume=resume).history[-1]

    straight = prepare(spec, data).fit(3).history[-1]  # one device, never interrupted
    run(tmp_path / "b", 2, False)  # one device, 2 epochs, for the child to resume on 2x4
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, "-c", CHILD, str(spec), str(data), str(tmp_path)], capture_output=True,
                       text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = json.loads(r.stdout.strip().splitlines()[-1])
    runs["2x4->1"] = {"last": run(tmp_path / "a_for_one", 3, True), "kernel_shard": [16, 32], "resumed_from": 12}

    assert runs["1->2x4"]["kernel_shard"] == [16, 8]  # restored straight onto its shards
    assert runs["2x4->8x1"]["kernel_shard"] == [16, 32]
    for name, got in runs.items():
        assert got["resumed_from"] == 12, name
        for split in ("train", "eval"):
            a, b = got["last"][split]["loss"], straight[split]["loss"]
            assert abs(a - b) <= 1e-5 * abs(b), (name, split, a, b)
    shutil.rmtree(tmp_path / "a", ignore_errors=True)
