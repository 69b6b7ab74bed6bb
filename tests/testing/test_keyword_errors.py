"""A bad ``-k`` expression is refused with a message that names the problem (exit 2), not any ValueError."""

from __future__ import annotations

from pathlib import Path

import pytest

from nnx_build.cli import main

SPEC = (
    "format: 1\nname: m\ninputs:\n  x: [batch, 2]\nlayers:\n  - l: {type: Linear, in_features: 2, out_features: 2}\n"
    "tests:\n  - name: counts\n    params: {Param: 6}\n"
)


@pytest.mark.parametrize(
    ("expr", "problem"),
    [("a and (", "ends early"), ("(a", "ends early"), ("and", "has an unexpected 'and'"), ("a b", "has an unexpected 'b'")],
)
def test_bad_keyword_expression(tmp_path: Path, capsys: pytest.CaptureFixture[str], expr: str, problem: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    capsys.readouterr()
    assert main(["test", str(spec), "-k", expr]) == 2
    out = capsys.readouterr()
    text = out.out + out.err
    assert f"-k expression {problem}: '{expr}'" in text, text
    assert "Traceback" not in text
