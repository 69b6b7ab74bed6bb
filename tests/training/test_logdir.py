"""`nnx-build train --logdir`: TensorBoard's own reader finds one scalar per step; metrics.jsonl beside the checkpoints."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from train_helpers import REG_SPEC

from nnx_build.cli import main

# REG_SPEC: 160 examples, eval_split 0.2 -> 128 to train on, batch 16 -> 8 steps an epoch;
# cosine_decay_schedule(init_value=1e-2, decay_steps=total_steps) with 4 epochs -> 32 steps
STEPS_PER_EPOCH = 8
TOTAL_STEPS = 32


def _scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    out: dict[str, list[tuple[int, float]]] = {}
    for run in sorted(p for p in [logdir, *logdir.iterdir()] if p.is_dir()):
        acc = ea.EventAccumulator(str(run), size_guidance={ea.SCALARS: 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return {k: sorted(v) for k, v in out.items()}


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_logdir_scalars_per_step_and_epoch(tmp_path: Path, reg_npz: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "reg.yaml"
    spec.write_text(REG_SPEC)
    ckpt, logs = tmp_path / "ckpt", tmp_path / "runs"
    base = ["train", str(spec), "--data", str(reg_npz), "--out", str(ckpt), "--logdir", str(logs), "--no-progress"]
    assert main([*base, "--epochs", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    scalars = _scalars(logs)
    steps = list(range(1, 2 * STEPS_PER_EPOCH + 1))
    for tag in ("train/loss", "train/mean_absolute_error", "train/learning_rate", "train/grad_norm", "train/step_time"):
        assert [s for s, _ in scalars[tag]] == steps, tag
    # the learning rate each step used: the cosine schedule at the number of updates before it
    for step, lr in scalars["train/learning_rate"]:
        assert lr == pytest.approx(0.5 * 1e-2 * (1 + math.cos(math.pi * (step - 1) / TOTAL_STEPS)), rel=1e-5)
    assert all(g > 0 and math.isfinite(g) for _, g in scalars["train/grad_norm"])
    assert all(t > 0 for _, t in scalars["train/step_time"])
    # per epoch, at the step that ends it: the epoch's train metrics are the mean of its steps'
    for tag in ("epoch/train/loss", "epoch/eval/loss", "epoch/eval/mean_absolute_error", "epoch/seconds"):
        assert [s for s, _ in scalars[tag]] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH], tag
    first = [v for s, v in scalars["train/loss"] if s <= STEPS_PER_EPOCH]
    assert scalars["epoch/train/loss"][0][1] == pytest.approx(sum(first) / len(first), rel=1e-5)
    assert scalars["epoch/eval/loss"][1][1] == pytest.approx(result["eval"]["loss"], rel=1e-6)

    # metrics.jsonl beside the checkpoints: the same numbers
    records = _lines(ckpt / "metrics.jsonl")
    per_step = [r for r in records if "epoch" not in r]
    assert [r["step"] for r in per_step] == steps
    assert [r["loss"] for r in per_step] == pytest.approx([v for _, v in scalars["train/loss"]], rel=1e-6)
    assert [r["epoch"] for r in records if "epoch" in r] == [1, 2]

    # a resumed run goes on in both
    assert main([*base, "--resume", "--epochs", "3"]) == 0
    assert [s for s, _ in _scalars(logs)["train/loss"]] == list(range(1, 3 * STEPS_PER_EPOCH + 1))
    assert [r["step"] for r in _lines(ckpt / "metrics.jsonl") if "epoch" not in r] == list(range(1, 3 * STEPS_PER_EPOCH + 1))


@pytest.mark.slow
def test_metrics_jsonl_without_logdir(tmp_path: Path, reg_npz: Path) -> None:
    spec = tmp_path / "reg.yaml"
    spec.write_text(REG_SPEC)
    ckpt = tmp_path / "ckpt"
    assert main(["train", str(spec), "--data", str(reg_npz), "--out", str(ckpt), "--epochs", "1", "--no-progress"]) == 0
    records = _lines(ckpt / "metrics.jsonl")
    assert [r["step"] for r in records] == [*range(1, STEPS_PER_EPOCH + 1), STEPS_PER_EPOCH]
    assert not list(tmp_path.rglob("events.out.tfevents*"))
    # starting over (--force) starts the metrics over too
    assert main(["train", str(spec), "--data", str(reg_npz), "--out", str(ckpt), "--epochs", "1", "--no-progress", "--force"]) == 0
    assert len(_lines(ckpt / "metrics.jsonl")) == STEPS_PER_EPOCH + 1


@pytest.mark.slow
def test_logdir_without_checkpoints_keeps_metrics_jsonl_there(tmp_path: Path, reg_npz: Path) -> None:
    spec = tmp_path / "reg.yaml"
    spec.write_text(REG_SPEC)
    logs = tmp_path / "runs"
    assert main(["train", str(spec), "--data", str(reg_npz), "--logdir", str(logs), "--epochs", "1", "--no-progress"]) == 0
    assert [r["step"] for r in _lines(logs / "metrics.jsonl") if "epoch" not in r] == list(range(1, STEPS_PER_EPOCH + 1))
    assert [s for s, _ in _scalars(logs)["train/grad_norm"]] == list(range(1, STEPS_PER_EPOCH + 1))


def test_two_runs_in_one_second_keep_both_event_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a run resumed in the same process within the same second must not truncate the first's events
    from nnx_build.training import runlog

    monkeypatch.setattr(runlog.time, "time", lambda: 1_700_000_000.0)
    for step in (1, 2):
        with runlog.RunLog(logdir=tmp_path) as log:
            log.step(step, {"loss": float(step)})
    assert len(list(tmp_path.iterdir())) == 2
    assert _scalars(tmp_path)["train/loss"] == [(1, 1.0), (2, 2.0)]
