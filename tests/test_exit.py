"""The installed command ends without the interpreter's teardown, and loses nothing by it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def test_exit_now_joins_threads_runs_exit_handlers_and_flushes(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import atexit, sys, threading, time
        from pathlib import Path
        from nnx_build.cli import exit_now
        out = Path({str(tmp_path)!r})
        atexit.register(lambda: (out / "atexit").write_text("ran"))
        def late():
            time.sleep(0.3)
            (out / "thread").write_text("done")
        threading.Thread(target=late).start()
        sys.stdout.write("buffered")  # a pipe: block-buffered, still in the buffer
        exit_now(7)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 7, r.stderr
    assert r.stdout == "buffered"
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "done"


GOOD = "format: 1\nname: ok\ninputs: {x: {shape: [batch, 3]}}\nlayers:\n  - {fc: {type: Linear, in_features: 3, out_features: 2}}\n"
BAD = "format: 1\nname: bad\ninputs: {x: {shape: [batch, 3]}}\nlayers:\n  - {fc: {type: Linera}}\n"


@pytest.mark.parametrize(("text", "code"), [(GOOD, 0), (BAD, 2)], ids=["ok", "spec-error"])
def test_the_command_keeps_its_exit_code_and_whole_output(tmp_path: Path, text: str, code: int) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    r = subprocess.run([sys.executable, "-m", "nnx_build.cli", "check", str(spec), "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == code, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["ok"] is (code == 0)
    assert "Traceback" not in r.stderr


def test_the_installed_command_is_run() -> None:
    import tomllib

    root = Path(__file__).resolve().parents[1]
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["nnx-build"] == "nnx_build.cli:run"


def test_the_forward_on_zeros_has_finished_when_the_build_reports_it() -> None:
    # JAX dispatches asynchronously; the process now ends without waiting for work in
    # flight, so the build must wait for its forward itself (a failure would be lost)
    from nnx_build import pipeline
    from nnx_build.summary import forward_on_zeros

    layers = [{f"fc{i}": {"type": "Linear", "in_features": 512, "out_features": 512}} for i in range(8)]
    spec = {"format": 1, "name": "slow_forward", "inputs": {"x": {"shape": ["batch", 512]}}, "dims": {"batch": 512}, "layers": layers}
    built = pipeline.build(spec)
    outputs = forward_on_zeros(built.model, built.program)  # ~2 GFLOP: tens of milliseconds after dispatch
    assert all(leaf.is_ready() for leaf in outputs.values())
