"""Two processes (``nnx-build launch``) check the data before the first step, each reading
only its share of the rows, and reach the same verdict: a bad label in the second half is
reported word for word by both, and the job exits 2 without waiting on a collective.

What a process read of the data file is measured by the kernel, not by the code under
test: the resident pages of the file's mappings in ``/proc/self/smaps`` (a memory-mapped
page is mapped into the process only once it is read)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nnx_build.training import checks
from nnx_build.training.data import Dataset, split_indices

from .test_sharded_train import SPEC

CLS_SPEC = SPEC.replace("loss: mean_squared_error", "targets: [y]\n  loss: softmax_cross_entropy_with_integer_labels")
N = 1 << 20  # 64 MiB of inputs, 4 MiB of labels: the kernel maps a file's pages in folios of up to 2 MiB

# a plugin: around the start-up checks, the data digest (written to every checkpoint) and
# what the process has mapped of the data file, written to reads<process>.json
MEASURE = """
import json, os
from pathlib import Path
from nnx_build.training import checks, loop

original = loop.check_targets


def mapped(path):
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            words = line.split()
            if words and not words[0].endswith(":"):
                inside = len(words) >= 6 and words[5] == path
            elif inside and words[0] == "Rss:":
                total += int(words[1]) * 1024
    return total


def check_targets(data, plan, outputs):
    out = {"process": int(os.environ["JAX_PROCESS_ID"]), "file": os.path.getsize(data.source)}
    try:
        out["digest"] = checks.data_digest(data)
        original(data, plan, outputs)
    finally:
        out["mapped"] = mapped(os.path.realpath(data.source))
        Path(data.source).with_name(f"reads{out['process']}.json").write_text(json.dumps(out))


loop.check_targets = check_targets
"""


@pytest.mark.slow
def test_two_processes_check_their_shares_and_agree(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(CLS_SPEC)
    (tmp_path / "measure_reads.py").write_text(MEASURE)
    rng = np.random.default_rng(0)
    arrays = {"x": rng.standard_normal((N, 16)).astype(np.float32), "y": rng.integers(0, 4, N).astype(np.int32)}
    arrays["y"][[700_000, 900_000]] = [4, 9]  # the head has 4 classes; both in process 1's half
    data = tmp_path / "data.npz"
    np.savez(data, **arrays)

    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COORDINATOR")}
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "nnx_build.cli", "launch", "-n", "2", "--devices-per-process", "2", "--",
                        "train", str(spec), "--data", str(data), "--mesh", "data=4", "--no-progress", "--plugin", "measure_reads"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=180)
    seconds = time.monotonic() - start
    assert r.returncode == 2, r.stderr[-3000:]
    assert seconds < 90, seconds
    # the same located error from both processes, counting the bad labels of all rows
    errors = [line for line in r.stderr.splitlines() if "error[label-range]" in line]
    assert len(errors) == 2 and errors[0] == errors[1], r.stderr[-3000:]
    assert errors[0] == (f"error: {data}: error[label-range]: target 'y' has 2 label(s) outside [0, 4) (output 'out' has 4 "
                         "classes), the first y[700000] = 4; labels must be 0 .. 3")
    reads = [json.loads((tmp_path / f"reads{i}.json").read_text()) for i in range(2)]
    # one digest, the one a single process computes
    with np.load(data) as f:
        loaded = {k: f[k] for k in ("x", "y")}
    alone = checks.data_digest(Dataset(loaded, *split_indices(N, 0.25, 0)))
    assert reads[0]["digest"] == reads[1]["digest"] == alone
    # each process mapped about half the file (its share, the first batch's rows, pages around them)
    for read in reads:
        assert 0.4 * read["file"] < read["mapped"] < 0.65 * read["file"], read
