"""Same spec, same seed, two separate processes: bit-identical weights, StableHLO and manifest hashes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}

WEIGHTS = r"""
import hashlib, json, sys
import numpy as np
from flax import nnx
import nnx_build
out = {}
for item in sys.argv[1:]:
    spec, seed = item.rsplit(":", 1)
    model = nnx_build.build(spec, seed=int(seed))
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Not(nnx.RngState))):
        a = np.asarray(var[...])
        out[item + " " + "/".join(map(str, path))] = [a.dtype.str, list(a.shape), hashlib.sha256(a.tobytes()).hexdigest()]
print(json.dumps(out))
"""

SPECS = ["specs/seed/model.yaml", "specs/residual.yaml", "specs/cnn.yaml"]


def _weights(items: list[str]) -> dict[str, list]:
    proc = subprocess.run([sys.executable, "-c", WEIGHTS, *items], env=ENV, capture_output=True, text=True,
                          timeout=300, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_weights_are_bit_identical_across_processes() -> None:
    items = [f"{ROOT / s}:3" for s in SPECS] + [f"{ROOT / SPECS[0]}:4"]
    a, b = _weights(items), _weights(items)
    assert a == b
    for s in SPECS:
        assert any(k.startswith(f"{ROOT / s}:3 ") for k in a)
    three = {k.split(" ", 1)[1]: v for k, v in a.items() if k.startswith(f"{ROOT / SPECS[0]}:3 ")}
    four = {k.split(" ", 1)[1]: v for k, v in a.items() if k.startswith(f"{ROOT / SPECS[0]}:4 ")}
    assert three.keys() == four.keys() and three != four  # the seed does matter


def _export(spec: Path, out: Path) -> dict:
    subprocess.run([sys.executable, "-m", "nnx_build.cli", "export", str(spec), "--to", "stablehlo", "--out", str(out),
                    "--seed", "5", "--no-verify"], env=ENV, capture_output=True, timeout=300, check=True)
    return json.loads((out / "manifest.json").read_text())


@pytest.mark.slow
def test_stablehlo_and_manifest_hashes_are_identical_across_processes(tmp_path: Path) -> None:
    spec = ROOT / "specs" / "residual.yaml"
    m1, m2 = _export(spec, tmp_path / "a"), _export(spec, tmp_path / "b")
    for rel in ("stablehlo/main.mlirbc", "stablehlo/features.mlirbc"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert m1["files"] == m2["files"] and m1["files"]  # every artifact's sha256 and size
    assert m1["spec"] == m2["spec"] and m1["seed"] == m2["seed"] == 5
    assert m1["entries"] == m2["entries"]
