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


# ---- the command line behaves like one -------------------------------------------------

MODEL = str(ROOT / "specs/seed/model.yaml")


def _one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    for word in ("Traceback", "Usage:", "Exception", "Error:", "NoSuchOption", "BadParameter", "MissingParameter"):
        assert word not in err, err
    return lines[0]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["check", MODEL, "--frobnicate"], "--frobnicate"),
        (["export", MODEL], "--out"),  # missing option
        (["check"], "Missing argument 'spec'"),  # missing argument
        ([], "no command given"),
        (["check", MODEL, "--debug"], "--debug goes before the command: nnx-build --debug check ... (see"),
        ([MODEL, "--debug"], f"--debug goes before the spec: nnx-build --debug {MODEL} ... (see"),
        (["train", MODEL, "--data", "d.npz", "--epochs", "-1"], "--epochs"),
        (["export", MODEL, "--out", "o", "--tolerance", "-1"], "--tolerance"),
        (["check", MODEL, "--max-params", "-5"], "--max-params"),
        (["export", MODEL, "--out", "o", "--platforms", "gpu"], "did you mean 'cuda'"),
    ],
    ids=["unknown-option", "missing-option", "missing-argument", "bare", "debug-after-command", "debug-after-spec",
         "epochs-negative", "tolerance-negative", "max-params-negative", "platforms-gpu"],
)
def test_usage_errors_are_one_line_exit_2(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert needle in _one_line_error(captured.err)
    assert captured.out == ""


def test_bare_nnx_build_in_a_fresh_process_is_one_line() -> None:
    proc = subprocess.run([sys.executable, "-m", "nnx_build.cli"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "nnx-build --help" in _one_line_error(proc.stderr)


def test_unknown_command_gets_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exprot", MODEL, "--out", "o"]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "'exprot' is neither a command nor a spec file" in line and "did you mean 'export'" in line


def test_debug_before_the_command_still_works(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--debug", "check", MODEL]) == 0
    assert "ok" in capsys.readouterr().out


def test_check_json_on_a_failing_spec_prints_one_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(THREE_MISTAKES)
    assert main(["check", str(spec), "--json"]) == 2
    captured = capsys.readouterr()
    data = json.loads(captured.out.strip().splitlines()[-1])
    assert data["ok"] is False
    assert [e["code"] for e in data["errors"]] == ["unknown-type", "unknown-ref", "wrong-type"]
    first = data["errors"][0]
    assert set(first) == {"file", "line", "col", "code", "message"}
    assert (first["file"], first["line"]) == (str(spec), _line_of(THREE_MISTAKES, "Lienar"))
    assert "did you mean 'Linear'" in first["message"]
    assert "error[unknown-type]" in captured.err  # people still read stderr


def test_check_json_budget_failure_and_success(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", MODEL, "--json", "--max-params", "10"]) == 2
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert data["ok"] is False and data["errors"][0]["code"] == "too-many-params"
    assert main(["check", MODEL, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["ok"] is True


def test_schema_out_folder_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--out", str(tmp_path)]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert f"--out {tmp_path} is a folder" in line and "nnx-spec.schema.json" in line
    assert list(tmp_path.iterdir()) == []


def test_build_summary_shows_model_level_variables(capsys: pytest.CaptureFixture[str]) -> None:
    # specs/residual.yaml declares `variables: {gain: {kind: Frozen, shape: [8]}}` at model level
    assert main(["build", str(ROOT / "specs/residual.yaml")]) == 0
    out = capsys.readouterr().out
    assert "variables: gain (8) Frozen" in out
    row = next(ln for ln in out.splitlines() if ln.lstrip("│┃ ").startswith("gain "))
    assert "variable (Frozen)" in row and "8" in row


def test_commands_do_not_import_cli_or_private_names() -> None:
    import ast

    root = ROOT / "nnx_build"
    for path in sorted((root / "commands").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                assert module not in ("..cli", "nnx_build.cli"), f"{path.name} imports {module}"
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name} imports private {private} from {module}"
    cli = ast.parse((root / "cli.py").read_text(encoding="utf-8"))
    assert "_STATE" not in {t.id for n in ast.walk(cli) if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
