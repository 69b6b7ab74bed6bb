"""The ``mesh:`` section and ``--mesh``: rules in list form, sizes, devices, ranks, planning.

Everything here runs in the test process (one CPU device): planning needs no device.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from nnx_build import pipeline
from nnx_build.cli import main
from nnx_build.errors import NnxBuildError, SpecErrors
from nnx_build.sharding import logical_to_mesh, parse_mesh, resolve_axes

ROOT = Path(__file__).resolve().parents[2]

# the form the docs give: a list of [logical, mesh axis | null] pairs
TINY = """\
format: 1
name: tiny_mesh
inputs: {x: [batch, 16]}
mesh:
  axes: {data: 2, model: 4}
  rules: [[embed, null], [mlp, model], [batch, data]]
variables:
  table: {shape: [8, 16], sharding: [mlp, embed]}
layers:
  - fc: {type: Linear, in_features: 16, out_features: 32, sharding: {kernel: [embed, mlp], bias: [mlp]}}
  - proj: {type: Linear, in_features: 32, out_features: 16, sharding: {kernel: [mlp, embed]}}
"""


def _write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_rules_in_list_form_are_read() -> None:
    spec = pipeline.load(TINY)
    assert spec.mesh is not None
    assert spec.mesh.axes == {"data": 2, "model": 4}
    assert spec.mesh.rules == [["embed", None], ["mlp", "model"], ["batch", "data"]]


@pytest.mark.parametrize(
    ("mesh", "code", "text"),
    [
        ("{axes: {data: -1, model: -1}}", "bad-value", "at most one mesh axis may have size -1"),
        ("{axes: {data: 0}}", "bad-value", "positive integers or -1"),
        ("{axes: {data: 2}, rules: [[embed, modle]]}", "bad-value", "mesh axis 'modle', which 'axes' does not declare"),
        ("{axes: {data: 2}, rules: [[embed]]}", "bad-value", "must be a pair"),
    ],
)
def test_bad_mesh_sections_are_located(tmp_path: Path, mesh: str, code: str, text: str) -> None:
    spec = _write(tmp_path, f"format: 1\nname: m\ninputs: {{x: [batch, 2]}}\nmesh: {mesh}\nlayers:\n  - relu\n")
    with pytest.raises(SpecErrors) as e:
        pipeline.load(spec)
    (err,) = e.value.errors
    assert err.code == code and text in err.message
    assert (err.loc.file, err.loc.line) == (str(spec), 4)


def test_model_variable_rank_mismatch_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _write(tmp_path, TINY.replace("sharding: [mlp, embed]", "sharding: [mlp]"))
    code, out, err = _run(["check", str(spec)], capsys)
    assert code == 2
    assert f"{spec}:8:" in err and "error[bad-shape]" in err
    assert "sharding names 1 axes, but the variable has shape (8, 16)" in err
    assert "Traceback" not in out + err


def test_a_mesh_larger_than_the_machine_names_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _write(tmp_path, TINY)
    code, out, err = _run(["build", str(spec), "--mesh", "data=2,model=4"], capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "needs 8 devices, but 1 are present" in err
    assert "XLA_FLAGS=--xla_force_host_platform_device_count=8" in err
    # the spec's own mesh says the same without --mesh
    code, out, err = _run(["build", str(spec)], capsys)
    assert code == 2 and "the spec's mesh: data=2,model=4 needs 8 devices" in err


def test_with_several_processes_a_smaller_mesh_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """One process may use some of its devices; a job of several must use all of theirs
    (the job's device and process counts are stood in for: 8 devices, 2 processes)."""
    import jax

    from nnx_build.sharding import MeshPlan, make_mesh

    monkeypatch.setattr(jax, "device_count", lambda: 8)
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    with pytest.raises(NnxBuildError, match="uses 4 of the 8 devices of 2 processes; with several processes the mesh uses all"):
        make_mesh(MeshPlan((("data", 4),), (), "--mesh"))


def test_minus_one_takes_the_rest() -> None:
    assert resolve_axes((("data", 2), ("model", -1)), 8) == (("data", 2), ("model", 4))
    with pytest.raises(NnxBuildError, match="does not divide the 8"):
        resolve_axes((("data", 3), ("model", -1)), 8)


@pytest.mark.parametrize("text", ["data", "data=0", "data=2,data=2", "data=-1,model=-1", "1x=2"])
def test_bad_mesh_option(text: str) -> None:
    with pytest.raises(NnxBuildError, match="--mesh"):
        parse_mesh(text)


def test_a_mesh_axis_no_rule_uses_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _write(tmp_path, TINY)
    code, _, err = _run(["check", str(spec), "--mesh", "modle=4"], capsys)
    assert code == 2 and "--mesh axis 'modle' is used by no rule" in err


def test_unknown_logical_axis_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _write(tmp_path, TINY.replace("bias: [mlp]", "bias: [mpl]"))
    code, _, err = _run(["check", str(spec)], capsys)
    assert code == 2 and "error[unknown-axis]" in err and "'mpl'" in err


def test_rules_first_applicable_wins() -> None:
    rules = (("batch", ("data", "fsdp")), ("embed", ("fsdp",)), ("mlp", ("tensor",)), ("kv", None))
    mesh = ("data", "fsdp", "tensor")
    assert logical_to_mesh(("embed", "mlp"), rules, mesh) == ("fsdp", "tensor")
    assert logical_to_mesh(("batch", "embed"), rules, mesh) == (("data", "fsdp"), None)  # fsdp already used
    assert logical_to_mesh(("kv", None), rules, mesh) == (None, None)
    assert logical_to_mesh(("embed", "mlp"), rules, ("fsdp",)) == ("fsdp", None)  # no tensor axis: replicated


def test_check_plans_per_device_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _write(tmp_path, TINY)
    code, out, _ = _run(["check", str(spec), "--json"], capsys)
    assert code == 0
    data = json.loads(out.strip().splitlines()[-1])
    # by hand, float32, model=4 splits the mlp axis, embed is replicated:
    # table (8,16) -> (2,16) = 32; fc.kernel (16,32) -> (16,8) = 128; fc.bias (32,) -> 8;
    # proj.kernel (32,16) -> (8,16) = 128; proj.bias (16,) replicated = 16
    assert data["per_device"] == {"devices": 8, "bytes": 4 * (32 + 128 + 8 + 128 + 16)}
    assert data["total_bytes"] == 4 * (128 + 16 * 32 + 32 + 32 * 16 + 16)


def test_optimizer_state_is_planned_with_its_parameters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _write(tmp_path, TINY)
    code, out, _ = _run(["check", str(spec), "--optimizer", "adamw", "--json", "--device-memory", "1KB"], capsys)
    assert code == 0
    pd = json.loads(out.strip().splitlines()[-1])["per_device"]
    # adamw keeps mu and nu shaped (and sharded) like each Param, plus an int32 step count
    assert pd["with_optimizer_bytes"] == 3 * pd["bytes"] + 4
    assert pd["fits"] is False
    code, out, _ = _run(["check", str(spec), "--optimizer", "adamw", "--device-memory", "16GB"], capsys)
    assert code == 0 and "fits 16.0 GB per device" in out and "8 devices, planned" in out


def test_llama_7b_fsdp8_is_an_eighth(capsys: pytest.CaptureFixture[str]) -> None:
    start = time.perf_counter()
    code, out, _ = _run(["check", str(ROOT / "specs" / "zoo" / "llama_7b.yaml"), "--mesh", "fsdp=8", "--json"], capsys)
    seconds = time.perf_counter() - start
    assert code == 0
    data = json.loads(out.strip().splitlines()[-1])
    total, per = data["total_bytes"], data["per_device"]
    assert total == 4 * 6_738_415_616
    assert per["devices"] == 8
    assert abs(per["bytes"] - total / 8) <= 0.05 * total / 8, (per, total)
    assert seconds < 5, f"{seconds:.1f} s"
