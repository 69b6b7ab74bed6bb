"""``export --mesh`` to StableHLO keeps the shardings (weights as arguments), verified on a
mesh of that size; with weights as constants the artifact is the gathered single-device model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .test_sharded_train import SPEC


def _cli(args: list[str], devices: int | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    if devices:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return subprocess.run([sys.executable, "-m", "nnx_build.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def _section(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())["artifacts"]["stablehlo"]


@pytest.mark.slow
def test_sharded_stablehlo_export(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "sharded"
    r = _cli(["export", str(spec), "--mesh", "data=2,model=4", "--to", "stablehlo", "--weights-as-args", "--out", str(out)], 8)
    assert r.returncode == 0, r.stderr[-3000:]  # exported and verified on the 8 devices
    section = _section(out)
    assert section["nr_devices"] == 8 and section["mesh"] == {"data": 2, "model": 4}
    code = (
        "import sys; from jax import export\n"
        "e = export.deserialize(bytearray(open(sys.argv[1], 'rb').read()))\n"
        "print(e.nr_devices, [str(s) for s in e.in_shardings_hlo])\n"
    )
    r2 = subprocess.run([sys.executable, "-c", code, str(out / "stablehlo" / "main.jax_export")], capture_output=True,
                        text=True, timeout=120)
    n, shardings = r2.stdout.split(" ", 1)
    assert n == "8"
    assert "replicated" not in shardings.split("', '")[1]  # fc/kernel: split over 'model'

    # this process has one device: verify says how many the artifact needs
    r3 = _cli(["verify", str(out)], None)
    assert r3.returncode == 2
    assert "exported for 8 devices, 1 are present" in r3.stderr
    assert "XLA_FLAGS=--xla_force_host_platform_device_count=8" in r3.stderr

    gathered = tmp_path / "gathered"
    r4 = _cli(["export", str(spec), "--mesh", "data=2,model=4", "--to", "stablehlo", "--out", str(gathered)], 8)
    assert r4.returncode == 0, r4.stderr[-3000:]
    section = _section(gathered)
    assert section["nr_devices"] == 1 and section["mesh"] == {"data": 2, "model": 4}
