"""Training tells the truth: wrt exclusions, data checks before the first step, refused resumes, check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from flax import nnx
from train_helpers import CLS_SPEC

import nnx_build
from nnx_build.cli import main
from nnx_build.errors import SpecErrors
from nnx_build.fastpath import flat_weights
from nnx_build.training import TrainError, prepare
from nnx_build.training.data import DataError

ROOT = Path(__file__).resolve().parents[2]
RESIDUAL = ROOT / "specs" / "residual.yaml"

CLS = CLS_SPEC  # LOSS: the loss each test trains with
INT_LOSS = CLS.replace("LOSS", "softmax_cross_entropy_with_integer_labels")


def _residual_data(n: int = 64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 5)).astype(np.float32)
    return {"x": x, "y": np.stack([x[:, 0] - x[:, 1], x[:, 2] * 0.5], axis=1).astype(np.float32)}


def _cls_data(n: int = 48, **override: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    arrays = {"x": rng.standard_normal((n, 4)).astype(np.float32), "y": rng.integers(0, 3, n).astype(np.int32)}
    return {**arrays, **override}


# ---- wrt: exclude kinds that NNX filters would match as subclasses ---------------------------


@pytest.mark.slow
def test_residual_frozen_gain_stays_frozen_bit_for_bit() -> None:
    trainer = prepare(RESIDUAL, _residual_data())
    assert issubclass(type(trainer.model.gain), nnx.Param)  # a Param kind: [Param] alone would train it
    assert trainer.kinds == ("Param",)
    before = {k: np.asarray(v) for k, v in flat_weights(trainer.model).items()}
    trainer.fit(1)
    after = flat_weights(trainer.model)
    assert after["gain"].tobytes() == before["gain"].tobytes()
    changed = [k for k in before if k != "gain" and not np.array_equal(after[k], before[k])]
    assert set(changed) == set(before) - {"gain"}  # every other parameter moved


@pytest.mark.slow
def test_wrt_param_alone_trains_the_declared_subkind_and_says_so() -> None:
    spec = RESIDUAL.read_text().replace("wrt: {include: [Param], exclude: [Frozen]}", "wrt: [Param]")
    trainer = prepare(spec, _residual_data())
    assert trainer.kinds == ("Frozen", "Param")
    before = np.asarray(trainer.model.gain[...])
    trainer.fit(1)
    assert not np.array_equal(np.asarray(trainer.model.gain[...]), before)


def test_train_header_lists_every_kind_that_trains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "d.npz"
    np.savez(data, **_residual_data())
    assert main(["train", str(RESIDUAL), "--data", str(data), "--epochs", "0", "--no-progress"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "of kind Param (wrt Param but not Frozen)" in header, header


def test_exclude_that_excludes_nothing_is_located() -> None:
    spec = RESIDUAL.read_text().replace("exclude: [Frozen]", "exclude: [BatchStat]")
    with pytest.raises(SpecErrors) as info:
        nnx_build.check(spec)
    (e,) = info.value.errors
    assert e.code == "bad-value" and e.path == ("train", "wrt", "exclude", 0) and "not a kind of Param" in e.message
    assert e.loc.line == spec.splitlines().index("  wrt: {include: [Param], exclude: [BatchStat]}") + 1


# ---- data checks before the first step --------------------------------------------------------


def _refused(tmp_path: Path, spec: str, arrays: dict[str, np.ndarray], code: str) -> DataError:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError) as info:
        prepare(spec, path)
    assert info.value.code == code, str(info.value)
    assert info.value.source == str(path)
    assert str(info.value).startswith(f"{path}: error[{code}]: ")
    return info.value


def test_float_labels_for_an_integer_label_loss(tmp_path: Path) -> None:
    y = _cls_data()["y"].astype(np.float32)
    e = _refused(tmp_path, INT_LOSS, _cls_data(y=y), "label-dtype")
    assert "y.astype(np.int32)" in e.message
    e = _refused(tmp_path, INT_LOSS, _cls_data(y=y + 0.5), "label-dtype")
    assert "softmax_cross_entropy" in e.message


def test_labels_outside_the_classes(tmp_path: Path) -> None:
    y = _cls_data()["y"].copy()
    y[7] = 3  # the head has 3 classes
    e = _refused(tmp_path, INT_LOSS, _cls_data(y=y), "label-range")
    assert "outside [0, 3)" in e.message and "y[7] = 3" in e.message
    y[7] = -1
    _refused(tmp_path, INT_LOSS, _cls_data(y=y), "label-range")


def test_nan_and_inf_in_inputs(tmp_path: Path) -> None:
    for bad in (np.nan, np.inf):
        x = _cls_data()["x"].copy()
        x[5, 2] = bad
        e = _refused(tmp_path, INT_LOSS, _cls_data(x=x), "not-finite")
        assert "input 'x'" in e.message and "(5, 2)" in e.message


def test_column_labels_are_refused_with_the_reshape(tmp_path: Path) -> None:
    y = _cls_data()["y"][:, None]
    e = _refused(tmp_path, INT_LOSS, _cls_data(y=y), "target-shape")
    assert "(N, 1)" in e.message and "(N,)" in e.message and "y.reshape(-1)" in e.message
    # a regression target (N,) for an (N, 1) output would broadcast to (N, N): refused too
    spec = CLS.replace("LOSS", "mean_squared_error").replace("out_features: 3", "out_features: 1")
    e = _refused(tmp_path, spec, _cls_data(y=np.zeros(48, np.float32)), "target-shape")
    assert "y.reshape(-1, 1)" in e.message


def test_files_that_are_not_npz(tmp_path: Path) -> None:
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros((4, 4), np.float32))
    csv = tmp_path / "d.csv"
    csv.write_text("x,y\n1,2\n")
    for path, words in ((npy, "single .npy array"), (csv, "not an .npz")):
        with pytest.raises(DataError) as info:
            prepare(INT_LOSS, path)
        assert info.value.code == "not-npz" and words in info.value.message and "np.savez" in info.value.message


def test_data_error_is_one_located_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "cls.yaml"
    spec.write_text(INT_LOSS)
    data = tmp_path / "d.npz"
    np.savez(data, **_cls_data(y=_cls_data()["y"] + 5))
    assert main(["train", str(spec), "--data", str(data), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {data}: error[label-range]: "), err


# ---- resume only the same run ------------------------------------------------------------------


@pytest.fixture
def run_dir(tmp_path: Path) -> tuple[Path, Path, Path]:
    spec = tmp_path / "cls.yaml"
    spec.write_text(INT_LOSS)
    data = tmp_path / "d.npz"
    np.savez(data, **_cls_data())
    out = tmp_path / "ckpt"
    assert main(["train", str(spec), "--data", str(data), "--out", str(out), "--epochs", "1", "--no-progress"]) == 0
    return spec, data, out


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (("type: adam,", "type: adamw,"), "the optimizer changed (adam() -> adamw())"),
        (("learning_rate: 0.01", "learning_rate: 0.02"), "the learning-rate schedule changed (learning_rate=0.01 -> learning_rate=0.02)"),
        (("- relu", "- tanh"), "the spec's model changed"),
        (("batch_size: 16", "batch_size: 8"), "the training setup changed"),
    ],
)
def test_resume_of_a_changed_run_is_refused(run_dir: tuple[Path, Path, Path], edit: tuple[str, str], said: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    spec, data, out = run_dir
    spec.write_text(INT_LOSS.replace(*edit))
    capsys.readouterr()
    assert main(["train", str(spec), "--data", str(data), "--out", str(out), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and said in err[0] and "--force" in err[0], err


def test_resume_with_other_data_is_refused(run_dir: tuple[Path, Path, Path]) -> None:
    spec, data, out = run_dir
    arrays = _cls_data()
    arrays["x"][0, 0] += 1
    np.savez(data, **arrays)
    with pytest.raises(TrainError, match="the data changed"):
        nnx_build.training.train(spec, data, out=out, resume=True)


@pytest.mark.slow
def test_refused_resume_prints_nothing_from_orbax_or_absl(run_dir: tuple[Path, Path, Path]) -> None:
    spec, data, out = run_dir
    spec.write_text(INT_LOSS.replace("type: adam,", "type: sgd,"))
    cmd = [sys.executable, "-m", "nnx_build.cli", "train", str(spec), "--data", str(data), "--out", str(out), "--resume", "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot resume from {out}: the optimizer changed"), r.stderr
    assert not any(w in r.stderr.lower() for w in ("absl", "orbax", "traceback", "warning"))
    # a folder with a step that is not a checkpoint: orbax warns through absl, which must stay quiet
    junk = out.parent / "junk"
    (junk / "5").mkdir(parents=True)
    cmd[cmd.index(str(out))] = str(junk)
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "step 5 is not an nnx-build training checkpoint" in r.stderr, r.stderr
    assert "absl" not in r.stderr.lower() and "traceback" not in r.stderr.lower()


# ---- check validates the train: section ---------------------------------------------------------


def test_check_validates_the_train_section() -> None:
    spec = INT_LOSS.replace(
        "  loss: softmax_cross_entropy_with_integer_labels\n",
        "  loss: {type: softmax_cross_entropy_with_integer_labels, output: haed}\n",
    ).replace("{type: adam, learning_rate: 0.01}", "{type: adam, learning_rate: 0.01, bta1: 0.8}")
    with pytest.raises(SpecErrors) as info:
        nnx_build.check(spec)
    by_code = {e.code: e for e in info.value.errors}
    assert set(by_code) == {"unknown-ref", "bad-value"}
    assert "output 'haed'" in by_code["unknown-ref"].message and "did you mean 'head'" in by_code["unknown-ref"].message
    assert "'bta1'" in by_code["bad-value"].message and "b1" in by_code["bad-value"].message
    lines = spec.splitlines()
    assert by_code["unknown-ref"].loc.line == next(i for i, t in enumerate(lines, 1) if "haed" in t)
    assert by_code["bad-value"].loc.line == next(i for i, t in enumerate(lines, 1) if "bta1" in t)


def test_validate_train_lists_problems_without_training() -> None:
    from nnx_build.training import validate_train

    program = nnx_build.compile(INT_LOSS.replace("targets: [y]", "targets: {y: float32}"))
    (e,) = validate_train(program.spec, program)
    assert e.path == ("train", "targets", "y", "dtype") and "integer class labels" in e.message
    good = nnx_build.compile(INT_LOSS)
    assert validate_train(good.spec, good) == []


def test_check_cli_reports_train_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(INT_LOSS.replace("learning_rate: 0.01}", "learning_rate: 0.01, bta1: 0.8}"))
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert f"{spec}:" in err and "error[bad-value]" in err and "bta1" in err


def test_resume_from_nothing_or_a_foreign_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "cls.yaml"
    spec.write_text(INT_LOSS)
    data = tmp_path / "d.npz"
    np.savez(data, **_cls_data())
    junk = tmp_path / "junk"
    (junk / "5").mkdir(parents=True)
    (junk / "notes.txt").write_text("not a checkpoint")
    for out, said in ((tmp_path / "missing", "does not exist"), (tmp_path, "holds no checkpoint"),
                      (junk, "step 5 is not an nnx-build training checkpoint")):
        assert main(["train", str(spec), "--data", str(data), "--out", str(out), "--resume", "--no-progress"]) == 2
        captured = capsys.readouterr()
        err = captured.err.strip().splitlines()
        assert len(err) == 1 and said in err[0], err
        assert "absl" not in captured.err + captured.out and "Traceback" not in captured.err
    assert not (tmp_path / "missing").exists()
