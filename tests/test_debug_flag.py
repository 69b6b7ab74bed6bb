"""``--debug`` shows the traceback of an internal error; without it the error is one line.

An internal error is any exception that is not an nnx-build error (a bug, not a bad spec):
here ``pipeline.compile`` is replaced by a function raising ``RuntimeError``. Run as the
real command in a fresh process, ``nnx-build --debug check`` lets Python print the
traceback (through the replaced function) and exit 1; without ``--debug`` the same error
is the single line ``error: RuntimeError: ...`` with exit code 1 and no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnx_build import pipeline
from nnx_build.cli import main

ROOT = Path(__file__).resolve().parents[1]
SPEC = "format: 1\nname: m\ninputs: {x: [batch, 4]}\nlayers:\n  - l: {type: Linear, in_features: 4, out_features: 3}\n"
BROKEN = """
import sys
from nnx_build import pipeline
from nnx_build.cli import main

def broken_compile(*args, **kwargs):
    raise RuntimeError("internal failure for the test")

pipeline.compile = broken_compile
sys.exit(main(sys.argv[1:]))
"""


def broken_compile(*args: object, **kwargs: object) -> None:
    raise RuntimeError("internal failure for the test")


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(SPEC, encoding="utf-8")
    return path


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "NNX_BUILD_DEBUG"}
    return subprocess.run([sys.executable, "-c", BROKEN, *args], capture_output=True, text=True, cwd=ROOT,
                          env={**environ, "JAX_PLATFORMS": "cpu", **env}, timeout=120)


def test_debug_prints_the_traceback_of_an_internal_error(spec: Path) -> None:
    proc = run("--debug", "check", str(spec))
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    # the frames from the command down to the function that raised
    assert os.path.join("nnx_build", "commands", "build.py") in proc.stderr
    assert 'File "<string>", line 7, in broken_compile' in proc.stderr
    assert proc.stderr.rstrip().endswith("RuntimeError: internal failure for the test")


def test_without_debug_the_same_error_is_one_line(spec: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("NNX_BUILD_DEBUG", raising=False)
    monkeypatch.setattr(pipeline, "compile", broken_compile)
    assert main(["check", str(spec)]) == 1
    assert capsys.readouterr().err.splitlines() == ["error: RuntimeError: internal failure for the test"]


def test_debug_and_the_environment_variable_let_the_exception_through(spec: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("NNX_BUILD_DEBUG", raising=False)
    monkeypatch.setattr(pipeline, "compile", broken_compile)
    with pytest.raises(RuntimeError, match="internal failure for the test"):
        main(["--debug", "check", str(spec)])
    monkeypatch.setenv("NNX_BUILD_DEBUG", "1")
    with pytest.raises(RuntimeError, match="internal failure for the test"):
        main(["check", str(spec)])
    assert "error:" not in capsys.readouterr().err
