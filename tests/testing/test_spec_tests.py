"""Spec tests: the tests: section, the runner, `nnx-build test` and the pytest plugin."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import nnx_build
from nnx_build.cli import main
from nnx_build.errors import SpecErrors
from nnx_build.testing import SpecSession, SpecTestFailure, discover, keyword_matcher, looks_like_spec_with_tests

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"

TINY = """\
format: 1
name: tiny
seed: 0
inputs:
  x: {shape: [batch, 3]}
layers:
  - lin: {type: Linear, in_features: 3, out_features: 4}
  - relu
  - out: {type: Linear, in_features: 4, out_features: 2}
outputs: [out]
tests:
  - name: counts
    params: {Param: 26}
  - name: forward
    inputs: {x: [5, 3]}
    outputs:
      out: {shape: [5, 2], dtype: float32}
    deterministic: true
  - name: golden
    inputs: {x: [5, 3]}
    golden: {file: goldens/tiny.npz}
  - name: learns
    train_step: {loss: mse, learning_rate: 0.1}
"""


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


# ---- the tests: section ---------------------------------------------------------------------


def test_cases_validate_with_shorthands() -> None:
    spec = nnx_build.load_spec(TINY)
    counts, forward, golden, learns = spec.tests
    assert counts.params == {"Param": 26} and counts.checks == ["params"]
    assert forward.inputs["x"].shape == [5, 2 + 1]
    assert forward.outputs["out"].shape == [5, 2]
    assert forward.checks == ["outputs", "deterministic"]
    assert golden.checks == ["forward", "golden"]
    assert learns.checks == ["train_step"]


@pytest.mark.parametrize(
    ("case", "code", "needle"),
    [
        ("- name: nothing\n", "bad-value", "checks nothing"),
        ("- name: a\n  params: {Param: 1}\n- name: a\n  params: {Param: 1}\n", "bad-value", "two test cases are named 'a'"),
        ("- name: t\n  params: {Param: 1}\n  colour: red\n", "unknown-field", "colour"),
        ("- name: t\n  train_step: {loss: hing}\n", None, "unknown loss 'hing' (did you mean 'hinge'?)"),
    ],
)
def test_bad_cases_are_located_spec_errors(case: str, code: str | None, needle: str) -> None:
    """A bad case does not stop the spec from loading or building; check reports it at its line."""
    text = TINY.split("tests:")[0] + "tests:\n" + textwrap.indent(case + "- name: good\n  params: {Param: 26}\n", "  ")
    spec = nnx_build.load_spec(text)
    assert [c.name for c in spec.tests][-1] == "good"
    nnx_build.build(text)
    with pytest.raises(SpecErrors) as info:
        nnx_build.check(text)
    err = info.value.errors[0]
    assert needle in str(info.value)
    if code:
        assert code in info.value.codes
    assert err.loc.line > _line_of(text, "tests:") - 1


# ---- the runner -----------------------------------------------------------------------------


def test_runner_passes_and_writes_then_reads_goldens(tiny: Path) -> None:
    session = SpecSession(tiny)
    golden = next(c for c in session.cases() if c.name == "golden")
    missing = session.run(golden)
    assert missing.status == "failed" and "--update-goldens" in missing.error.render()
    written = session.run(golden, update_goldens=True)
    assert written.status == "passed" and (tiny.parent / "goldens" / "tiny.npz").is_file()
    with np.load(tiny.parent / "goldens" / "tiny.npz") as data:
        assert sorted(data.files) == ["inputs/x", "outputs/out"]
        assert data["outputs/out"].shape == (5, 2)
    for case in session.cases():
        result = session.run(case)
        assert result.status == "passed", result.error and result.error.render()


def test_golden_mismatch_says_what_differed(tiny: Path) -> None:
    session = SpecSession(tiny)
    golden = next(c for c in session.cases() if c.name == "golden")
    session.run(golden, update_goldens=True)
    path = tiny.parent / "goldens" / "tiny.npz"
    with np.load(path) as data:
        arrays = {k: data[k].copy() for k in data.files}
    arrays["outputs/out"][2, 1] += 0.5
    np.savez(path, **arrays)
    with pytest.raises(SpecTestFailure) as info:
        SpecSession(tiny).check(golden)
    text = str(info.value)
    assert f"tiny.yaml:{_line_of(TINY, 'name: golden')}:" in text
    assert "1 of 10 elements differ; largest at (2, 1)" in text
    assert "abs diff 0.5" in text


def test_changed_dimension_fails_naming_the_copy_and_line(tmp_path: Path) -> None:
    """The acceptance check: a copy of a zoo spec with one dimension changed fails its tests."""
    copy = tmp_path / "my_resnet.yaml"
    text = (SPECS / "zoo" / "resnet50.yaml").read_text().replace("classes: 1000,", "classes: 999,")
    copy.write_text(text)
    session = SpecSession(copy)
    counts = next(c for c in session.cases() if c.name == "counts")
    with pytest.raises(SpecTestFailure) as info:
        session.check(counts)
    rendered = str(info.value)
    case_line = _line_of(text, "- name: counts")
    params_line = _line_of(text, "params: {Param: 25557032")
    assert rendered.splitlines()[0].startswith(f"{copy}:{case_line}:") or f"my_resnet.yaml:{case_line}:" in rendered
    assert f"my_resnet.yaml:{params_line}:" in rendered
    assert "Param: expected 25,557,032, got 25,554,983 (-2,049)" in rendered


def test_wrong_output_shape_and_unknown_output(tiny: Path) -> None:
    text = TINY.replace("out: {shape: [5, 2], dtype: float32}", "out: {shape: [5, 3], dtype: float32}\n      nope: [1]")
    tiny.write_text(text)
    session = SpecSession(tiny)
    forward = next(c for c in session.cases() if c.name == "forward")
    result = session.run(forward)
    rendered = result.error.render()
    assert f"tiny.yaml:{_line_of(text, 'out: {shape: [5, 3]')}:" in rendered
    assert "output 'out' has shape (5, 2), expected (5, 3)" in rendered
    assert "no output 'nope'; the outputs are: out" in rendered


@pytest.mark.parametrize("loss", ["huber", "softmax_cross_entropy_with_integer_labels"])
def test_train_step_takes_the_losses_of_the_training_table(tiny: Path, loss: str) -> None:
    text = tiny.read_text().replace("train_step: {loss: mse, learning_rate: 0.1}", f"train_step: {{loss: {loss}, learning_rate: 0.1}}")
    tiny.write_text(text)
    session = SpecSession(tiny)
    (learns,) = [c for c in session.cases() if c.name == "learns"]
    result = session.check(learns)
    assert any(note.startswith(f"{loss} loss ") for note in result.notes), result.notes


def test_train_step_that_cannot_learn_fails(tiny: Path) -> None:
    text = TINY.replace("train_step: {loss: mse, learning_rate: 0.1}", "train_step: {loss: mse, learning_rate: 1000.0}")
    tiny.write_text(text)
    session = SpecSession(tiny)
    learns = next(c for c in session.cases() if c.name == "learns")
    result = session.run(learns)
    assert result.status == "failed"
    assert "loss did not go down" in result.error.render() or "not finite" in result.error.render()


def test_spec_errors_fail_the_case_with_their_location(tmp_path: Path) -> None:
    text = TINY.replace("in_features: 4, out_features: 2", "in_features: 5, out_features: 2")
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    session = SpecSession(path)
    result = session.run(session.cases()[0])
    rendered = result.error.render()
    assert "[spec]" in rendered and f"broken.yaml:{_line_of(text, 'in_features: 5')}:" in rendered


def test_unknown_export_target_is_a_located_error_of_its_case(tiny: Path) -> None:
    text = TINY + "  - name: export\n    export: {targets: [nosuch]}\n"
    tiny.write_text(text)
    with pytest.raises(SpecErrors) as info:  # check refuses it
        nnx_build.check(tiny)
    assert f"tiny.yaml:{_line_of(text, 'targets: [nosuch]')}:" in str(info.value) and "nosuch" in str(info.value)
    session = SpecSession(tiny)  # the spec loads; the case fails, the others run
    results = {c.name: session.run(c) for c in session.cases() if c.name != "golden"}
    assert results["tests[4]"].status == "error" and "nosuch" in results["tests[4]"].error.render()
    assert [r.status for n, r in results.items() if n != "tests[4]"] == ["passed"] * 3


def test_keyword_matcher() -> None:
    ids = ["specs/zoo/resnet50.yaml::counts", "specs/zoo/resnet50.yaml::forward_small", "specs/mlp.yaml::counts"]
    assert [i for i in ids if keyword_matcher("counts")(i)] == [ids[0], ids[2]]
    assert [i for i in ids if keyword_matcher("resnet and not counts")(i)] == [ids[1]]
    assert [i for i in ids if keyword_matcher("(mlp or forward) and yaml")(i)] == ids[1:]
    assert keyword_matcher(None)("anything")


def test_discover_finds_specs_with_tests(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(TINY)
    (tmp_path / "b.yaml").write_text(TINY.split("tests:")[0])  # a spec without tests
    (tmp_path / "c.yaml").write_text("tests: [1]\n")  # not a spec
    (tmp_path / "d.json").write_text(json.dumps({"format": 1, "inputs": {}, "tests": []}))
    (tmp_path / "e.json").write_text(json.dumps({"format": "v2", "tests": [{"id": 1}]}))  # a report, not a spec
    (tmp_path / "f.yaml").write_text("format: markdown\ntitle: notes\ntests:\n  - id: 1\n")  # a document
    (tmp_path / "g.yaml").write_text("# yaml-language-server: $schema=../schema/nnx-spec.schema.json\nformat: one\ntests: []\n")
    (tmp_path / "h.json").write_text('{"format": 1, "layers": [], "tests": [')  # a broken spec is still a spec
    assert [p.name for p in discover([tmp_path])] == ["a.yaml", "d.json", "g.yaml", "h.json"]
    assert not looks_like_spec_with_tests(tmp_path / "b.yaml")
    # under a folder declared to hold specs (nnx_build_specs), a format key is enough
    assert looks_like_spec_with_tests(tmp_path / "e.json", declared=True)
    assert looks_like_spec_with_tests(tmp_path / "f.yaml", declared=True)
    assert not looks_like_spec_with_tests(tmp_path / "c.yaml", declared=True)


def test_every_spec_in_the_project_has_tests() -> None:
    specs = sorted(p for p in SPECS.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))
    assert specs
    without = [str(p.relative_to(ROOT)) for p in specs if not nnx_build.load_spec(p).tests]
    assert without == []


# ---- nnx-build test -------------------------------------------------------------------------


def test_cli_passes_and_exit_codes(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(tiny), "--update-goldens", "-k", "golden"]) == 0
    capsys.readouterr()
    assert main(["test", str(tiny)]) == 0
    out = capsys.readouterr().out
    assert "4 passed" in out
    assert main(["test", str(tiny), "-k", "nothing_matches"]) == 5
    assert main(["test", str(tiny.parent / "missing.yaml")]) == 2


def test_cli_failure_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = TINY.replace("params: {Param: 26}", "params: {Param: 27}")
    path = tmp_path / "copy.yaml"
    path.write_text(text)
    assert main(["test", str(path), "-k", "counts"]) == 1
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert f"copy.yaml:{_line_of(text, '- name: counts')}:5: spec test 'counts' failed" in out
    assert f"copy.yaml:{_line_of(text, 'Param: 27')}:" in out
    assert "Param: expected 27, got 26 (-1)" in out


def test_check_json_reports_the_published_counts(capsys: pytest.CaptureFixture[str]) -> None:
    published = {"resnet50.yaml": 25_557_032, "vit_b16.yaml": 86_567_656, "gpt2.yaml": 124_439_808}
    for name, count in published.items():
        assert main(["check", str(SPECS / "zoo" / name), "--json"]) == 0
        data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert data["params"]["Param"] == count, name


# ---- the pytest plugin ----------------------------------------------------------------------


def _pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd, capture_output=True, text=True, timeout=600,
    )


def test_plugin_collects_cases_next_to_ordinary_tests(tmp_path: Path) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "specs" / "tiny.yaml").write_text(TINY.replace("params: {Param: 26}", "params: {Param: 27}"))
    (tmp_path / "specs" / "notaspec.yaml").write_text("tests: [1]\n")
    (tmp_path / "tests" / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\ntestpaths = ["tests", "specs"]\nnnx_build_specs = ["specs"]\n'
    )
    collected = _pytest(tmp_path, "--collect-only", "-q")
    assert collected.returncode == 0, collected.stdout + collected.stderr
    ids = [line for line in collected.stdout.splitlines() if "::" in line]
    assert ids == [
        "tests/test_plain.py::test_plain",
        "specs/tiny.yaml::counts",
        "specs/tiny.yaml::forward",
        "specs/tiny.yaml::golden",
        "specs/tiny.yaml::learns",
    ]
    run = _pytest(tmp_path, "-q", "-k", "counts or plain")
    assert run.returncode == 1
    line = _line_of(TINY, "- name: counts")
    assert f"specs/tiny.yaml:{line}:5: spec test 'counts' failed" in run.stdout
    assert "Param: expected 27, got 26 (-1)" in run.stdout
    assert "1 failed, 1 passed" in run.stdout
    assert "Traceback" not in run.stdout


@pytest.mark.slow
def test_plugin_update_goldens_then_pass(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY)
    update = _pytest(tmp_path, "-q", "tiny.yaml", "-k", "golden", "--nnx-update-goldens")
    assert update.returncode == 0, update.stdout
    assert (tmp_path / "goldens" / "tiny.npz").is_file()
    again = _pytest(tmp_path, "-q", "tiny.yaml", "-k", "golden or counts")
    assert again.returncode == 0, again.stdout
    assert "2 passed" in again.stdout


def test_inputs_file_and_method_cases(tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", x=np.ones((2, 2), np.float32))
    text = (SPECS / "seed" / "autoencoder.yaml").read_text().split("tests:")[0] + textwrap.dedent(
        """\
        tests:
          - name: from_file
            method: encode
            inputs_file: x.npz
            outputs:
              encoder: {shape: [2, 10], dtype: float32}
          - name: missing_file
            inputs_file: nope.npz
          - name: no_such_method
            method: decode
            inputs: {x: [1, 2]}
          - name: no_such_input
            inputs: {y: [1, 2]}
        """
    )
    path = tmp_path / "ae.yaml"
    path.write_text(text)
    session = SpecSession(path)
    results = {c.name: session.run(c) for c in session.cases()}
    assert results["from_file"].status == "passed", results["from_file"].error
    assert "inputs file" in results["missing_file"].error.render() and "does not exist" in results["missing_file"].error.render()
    assert "no method 'decode'" in results["no_such_method"].error.render()
    assert f"ae.yaml:{_line_of(text, 'inputs: {y:')}:" in results["no_such_input"].error.render()
    assert "input 'y' is not an input of the model; its inputs: x" in results["no_such_input"].error.render()
