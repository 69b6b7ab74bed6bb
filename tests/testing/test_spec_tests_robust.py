"""Spec tests stay out of the way: the plugin in other projects, bad cases, -k, ${...}, check."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import nnx_build
from nnx_build.cli import main
from nnx_build.errors import SpecErrors
from nnx_build.testing import SpecSession, run, validate_tests

SPEC = """\
format: 1
name: tiny
args: {width: 4, batch: 5}
inputs:
  x: {shape: [batch, 3]}
layers:
  - lin: {type: Linear, in_features: 3, out_features: "${width}"}
  - relu
  - out: {type: Linear, in_features: "${width}", out_features: 2}
outputs: [out]
tests:
"""


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _spec(tmp_path: Path, cases: str, name: str = "tiny.yaml") -> tuple[Path, str]:
    text = SPEC + textwrap.indent(textwrap.dedent(cases), "  ")
    path = tmp_path / name
    path.write_text(text)
    return path, text


def _pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd, capture_output=True, text=True, timeout=600,
    )


# ---- the plugin in someone else's project --------------------------------------------------------


def test_plugin_leaves_other_yaml_and_json_alone(tmp_path: Path) -> None:
    """A project's fixtures with format: and tests: keys are not specs: its own tests run, exit 0."""
    (tmp_path / "tests" / "fixtures").mkdir(parents=True)
    (tmp_path / "tests" / "fixtures" / "report.json").write_text(json.dumps({"format": "v2", "tests": [{"id": 1}]}))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.yaml").write_text("format: markdown\ntitle: Release notes\ntests:\n  - id: 1\n    text: ok\n")
    (tmp_path / "tests" / "test_mine.py").write_text("def test_mine():\n    assert 1 + 1 == 2\n")
    result = _pytest(tmp_path, "-q", "-rA")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED tests/test_mine.py::test_mine" in result.stdout
    assert "1 passed" in result.stdout and "error" not in result.stdout.lower()


def test_plugin_broken_spec_is_one_failing_item_not_a_collection_error(tmp_path: Path) -> None:
    spec, _ = _spec(tmp_path, "- name: counts\n  params: {Param: 26}\n")
    spec.write_text(spec.read_text().replace("name: tiny", "name: tiny\nlayer_count: 2"))  # unmistakably a spec, does not load
    (tmp_path / "test_mine.py").write_text("def test_mine():\n    pass\n")
    result = _pytest(tmp_path, "-q")
    assert result.returncode == 1, result.stdout
    assert "Interrupted" not in result.stdout and "error during collection" not in result.stdout
    assert "1 failed, 1 passed" in result.stdout
    assert "tiny.yaml: the spec does not load" in result.stdout and "unknown field 'layer_count'" in result.stdout


def test_plugin_bad_case_fails_alone(tmp_path: Path) -> None:
    _, text = _spec(tmp_path, """\
        - name: counts
          params: {Param: 26}
        - name: typo
          outputs: {out: {shape: [5, 2], dtyp: float32}}
        - name: forward
          inputs: {x: [5, 3]}
        """)
    result = _pytest(tmp_path, "-q")
    assert result.returncode == 1, result.stdout
    assert "1 failed, 2 passed" in result.stdout
    assert f"tiny.yaml:{_line_of(text, 'dtyp:')}:" in result.stdout and "unknown field 'dtyp'" in result.stdout


# ---- a bad case, ${...}, and check ---------------------------------------------------------------


def test_expressions_in_tests_are_evaluated_over_args(tmp_path: Path) -> None:
    path, _ = _spec(tmp_path, """\
        - name: counts
          params: {Param: "${3 * width + width + width * 2 + 2}"}
        - name: forward
          inputs: {x: ["${batch}", 3]}
          outputs: {out: {shape: ["${batch}", 2]}}
        """)
    spec = nnx_build.load_spec(path)
    assert spec.tests[0].params == {"Param": 26}  # 3*4 + 4 + 4*2 + 2, by hand
    assert spec.tests[1].inputs["x"].shape == [5, 3]
    nnx_build.check(path)
    session = SpecSession(path)
    assert [session.run(c).status for c in session.cases()] == ["passed", "passed"]


def test_bad_expression_is_located_and_only_its_case_fails(tmp_path: Path) -> None:
    path, text = _spec(tmp_path, """\
        - name: counts
          params: {Param: 26}
        - name: forward
          inputs: {x: ["${batchsize}", 3]}
        """)
    assert [c.name for c in nnx_build.load_spec(path).tests] == ["counts"]
    with pytest.raises(SpecErrors) as info:
        nnx_build.check(path)
    assert info.value.codes == ["bad-expression"]
    assert f"tiny.yaml:{_line_of(text, 'batchsize')}:" in str(info.value) and "batchsize" in str(info.value)
    summary = run([path])
    assert [(r.case.name, r.status) for r in summary.results] == [("counts", "passed"), ("tests[1]", "error")]
    assert summary.exit_code == 1


def test_check_finds_what_a_case_asks_of_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, text = _spec(tmp_path, """\
        - name: a
          outputs: {outt: [5, 2]}
          inputs: {x: [5, 3, 1]}
        - name: b
          method: encode
          inputs: {x: [5, 3]}
        - name: c
          train_step: {loss: mse, output: lin}
        - name: d
          inputs_file: nope.npz
        """)
    errors = validate_tests(nnx_build.load_spec(path))
    got = {(e.loc.line, e.code) for e in errors}
    assert got == {
        (_line_of(text, "outt"), "unknown-name"),
        (_line_of(text, "x: [5, 3, 1]"), "bad-shape"),
        (_line_of(text, "method: encode"), "unknown-name"),
        (_line_of(text, "output: lin"), "unknown-name"),
        (_line_of(text, "nope.npz"), "missing-file"),
    }
    assert any("did you mean 'out'" in e.message for e in errors)
    assert main(["check", str(path)]) == 2
    out = capsys.readouterr()
    assert "error[unknown-name]: no output 'outt'" in out.out + out.err


# ---- nnx-build test -k ----------------------------------------------------------------------------


def test_cli_k_that_matches_nothing_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = _spec(tmp_path, "- name: counts\n  params: {Param: 26}\n- name: more\n  params: {Param: 26}\n")
    assert main(["test", str(path), "-k", "nomatch"]) == 5
    captured = capsys.readouterr()
    assert "-k 'nomatch' matched none of the 2 case(s) in 1 spec file" in captured.out + captured.err
    assert main(["test", str(tmp_path / "empty")]) == 2  # a missing path: usage
    (tmp_path / "empty").mkdir()
    assert main(["test", str(tmp_path / "empty")]) == 5
    assert "no spec files with a tests: section found" in "".join(capsys.readouterr())
