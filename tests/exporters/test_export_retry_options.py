"""When a target fails, the command printed to export just the others keeps every option given (0 included)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dummy_target
import pytest

from nnx_build.cli import main
from nnx_build.exporters import TARGETS

SPEC = Path(__file__).resolve().parents[2] / "specs" / "seed" / "autoencoder.yaml"


def test_the_command_for_the_targets_that_worked_keeps_the_build_options(tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(TARGETS, "dummy", dummy_target.TARGET)
    monkeypatch.setitem(TARGETS, "broken", dummy_target.BROKEN)
    out = tmp_path / "out"
    given = ["--seed", "0", "--limit", "max_nodes=100000", "--max-params", "1000", "--mesh", "data=1", "--tolerance", "0"]
    code = main(["export", str(SPEC), "--to", "dummy,broken", "--out", str(out), "--no-verify", *given])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2
    assert "dummy converted; export just those with:" in err
    command = err.split("export just those with: ", 1)[1].split()
    assert command[:7] == ["nnx-build", "export", str(SPEC), "--out", str(out), "--to", "dummy"]
    pairs = {(a, b) for a, b in zip(command, command[1:], strict=False)}
    assert {("--seed", "0"), ("--limit", "max_nodes=100000"), ("--max-params", "1000"), ("--mesh", "data=1"), ("--tolerance", "0.0")} <= pairs
    assert "--no-verify" in command
