"""The command line: exit codes, one-line errors, --json on the last line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nnx_build.cli import main

ROOT = Path(__file__).resolve().parent.parent

THREE_MISTAKES = """\
format: 1
name: bad
inputs:
  x: {shape: [batch, 2]}
layers:
  - linear: {type: Lienar, in_features: 2, out_features: 64}
  - bn: {type: BatchNorm, num_features: 64, in: hidden}
  - out: {type: Linear, in_features: abc, out_features: 3}
"""


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_build_prints_summary_and_forward(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(ROOT / "specs/seed/model.yaml")]) == 0
    out = capsys.readouterr().out
    for name in ("linear", "bn", "dropout", "linear_out"):
        assert name in out
    # 2*64+64 + 64*3+3 Params in the Linears, 2*64 in BatchNorm scale/bias
    assert "515" in out and "128" in out
    assert "forward on zeros: linear_out -> shape (1, 3) float32" in out


def test_check_json_last_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(ROOT / "specs/seed/autoencoder.yaml"), "--json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    data = json.loads(last)
    # encoder 2*10+10, decoder 10*2+2
    assert data["params"] == {"Param": 52}
    assert data["total_bytes"] == 52 * 4
    assert data["outputs"] == {"decoder": {"shape": ["batch", 2], "dtype": "float32"}}
    assert data["methods"] == ["encode"]


def test_three_mistakes_three_located_errors_exit_2(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(THREE_MISTAKES)
    proc = subprocess.run(
        [sys.executable, "-m", "nnx_build.cli", str(spec)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if "error[" in ln]
    assert len(lines) == 3
    expected = {
        ("unknown-type", _line_of(THREE_MISTAKES, "Lienar")),
        ("unknown-ref", _line_of(THREE_MISTAKES, "in: hidden")),
        ("wrong-type", _line_of(THREE_MISTAKES, "in_features: abc")),
    }
    got = set()
    for ln in lines:
        loc, rest = ln.split(": error[", 1)
        file, line, _col = loc.rsplit(":", 2)
        assert file == str(spec)
        got.add((rest.split("]", 1)[0], int(line)))
    assert got == expected
    assert "did you mean 'Linear'" in proc.stderr


def test_missing_file_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["check", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert "error[file-not-found]" in err


def test_max_params_guard(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(ROOT / "specs/seed/model.yaml"), "--max-params", "100"]) == 2
    assert "error[too-many-params]" in capsys.readouterr().err


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Examples" in out and "nnx-build check" in out


def test_exit_codes_of_typer_exit_are_kept() -> None:
    import typer

    from nnx_build.cli import app

    @app.command("_exit_probe", hidden=True)
    def _probe() -> None:
        raise typer.Exit(code=3)

    try:
        assert main(["_exit_probe"]) == 3
    finally:
        app.registered_commands[:] = [c for c in app.registered_commands if c.name != "_exit_probe"]
