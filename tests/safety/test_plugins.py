"""Plugins load only when the user opts in: --plugin MODULE, or entry points on request."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PLUGIN = '''
from typing import Literal
import nnx_build
from nnx_build.schemas.common import Config
from pathlib import Path

Path(__file__).with_name("IMPORTED").write_text("yes")

class Twice(Config):
    type: Literal["probe>Twice"] = "probe>Twice"

def twice(cfg, x):
    return 2 * x

def register_all():
    Path(__file__).with_name("CALLED").write_text("yes")

nnx_build.register("probe>Twice", Twice, twice, kind="op")
'''

SPEC = 'format: 1\nname: m\ninputs: {x: [batch, 4]}\nlayers:\n  - {type: "probe>Twice"}\n'


def _setup(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    pkg = tmp_path / "site"
    pkg.mkdir()
    (pkg / "nnx_probe_plugin.py").write_text(PLUGIN, encoding="utf-8")
    dist = pkg / "nnx_probe_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nnx-probe-plugin\nVersion: 1.0\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text(
        "[nnx_build.plugins]\nprobe = nnx_probe_plugin:register_all\n", encoding="utf-8"
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(pkg), "JAX_PLATFORMS": "cpu"}
    env.pop("NNX_BUILD_ENTRY_POINTS", None)
    return spec, env


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nnx_build.cli", *args], capture_output=True, text=True, timeout=180, env=env
    )


def test_spec_alone_imports_nothing_even_with_an_installed_plugin(tmp_path: Path) -> None:
    spec, env = _setup(tmp_path)
    proc = _cli(["check", str(spec)], env)
    assert proc.returncode == 2
    assert "error[unknown-type]" in proc.stderr and "probe>Twice" in proc.stderr
    assert not (tmp_path / "site" / "IMPORTED").exists()


def test_plugin_option_imports_the_module(tmp_path: Path) -> None:
    spec, env = _setup(tmp_path)
    proc = _cli(["check", str(spec), "--plugin", "nnx_probe_plugin", "--json"], env)
    assert proc.returncode == 0, proc.stderr
    assert '"total_params": 0' in proc.stdout
    assert (tmp_path / "site" / "IMPORTED").exists()
    assert not (tmp_path / "site" / "CALLED").exists()  # entry points stay off


def test_entry_points_load_only_on_request(tmp_path: Path) -> None:
    spec, env = _setup(tmp_path)
    proc = _cli(["check", str(spec), "--plugins-from-entry-points"], env)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "site" / "CALLED").exists()
    (tmp_path / "site" / "CALLED").unlink()
    proc = _cli(["build", str(spec)], {**env, "NNX_BUILD_ENTRY_POINTS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "site" / "CALLED").exists()


def test_missing_plugin_is_one_line_error(tmp_path: Path) -> None:
    spec, env = _setup(tmp_path)
    proc = _cli(["check", str(spec), "--plugin", "no_such_plugin_module"], env)
    assert proc.returncode == 2
    assert "cannot import plugin 'no_such_plugin_module'" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = _cli(["check", str(spec), "--plugin", "os; rm -rf /"], env)
    assert proc.returncode == 2 and "module name" in proc.stderr


def test_export_takes_plugins_too(tmp_path: Path) -> None:
    spec, env = _setup(tmp_path)
    out = tmp_path / "export"
    proc = _cli(["export", str(spec), "--to", "stablehlo", "--out", str(out)], env)
    assert proc.returncode == 2 and "error[unknown-type]" in proc.stderr
    assert not out.exists()
    proc = _cli(["export", str(spec), "--to", "stablehlo", "--out", str(out), "--plugin", "nnx_probe_plugin"], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["verification"]["status"] == "passed"
