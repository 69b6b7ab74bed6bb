"""The training loop: the loss falls, wrt decides what trains, LoRA, resume, checkpoints, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx
from train_helpers import REG_SPEC

from nnx_build.cli import main
from nnx_build.fastpath import flat_weights
from nnx_build.training import CheckpointStore, TrainError, prepare, read_model_weights, train
from nnx_build.training.data import DataError

CLS_HEAD = """
format: 1
name: cls
seed: 0
inputs: {x: [batch, 4]}
"""
CLS_TRAIN = """
train:
  targets: {y: int32}
  loss: softmax_cross_entropy_with_integer_labels
  metrics: [accuracy]
  optimizer: {type: adam, learning_rate: 0.01}
  batch_size: 32
  epochs: 3
  eval_split: 0.25
  wrt: WRT
"""


def test_loss_falls_and_model_gets_the_weights(reg_npz: Path) -> None:
    trainer = prepare(REG_SPEC, reg_npz)
    before = {k: np.asarray(v) for k, v in flat_weights(trainer.model).items()}
    result = trainer.fit(6)
    losses = [h["train"]["loss"] for h in result.history]
    assert len(losses) == 6 and np.isfinite(losses).all()
    assert losses[-1] < 0.3 * losses[0]
    assert result.history[-1]["eval"]["loss"] < result.history[0]["eval"]["loss"]
    assert result.step == 6 * trainer.steps_per_epoch
    # the fast path: one pure jax.jit step, compiled once for every step of the run
    assert isinstance(trainer.train_step.compiled, type(jax.jit(lambda x: x)))
    assert trainer.train_step.compiled._cache_size() == 1
    after = flat_weights(trainer.model)
    assert not np.array_equal(before["linear/kernel"], after["linear/kernel"])  # written back
    assert not np.array_equal(before["bn/mean"], after["bn/mean"])  # batch statistics updated


def test_wrt_declared_kind_is_left_alone(cls_npz: Path) -> None:
    spec = CLS_HEAD + """kinds: {Frozen: {base: Variable}}
layers:
  - body: {type: Linear, in_features: 4, out_features: 8, kinds: {kernel: Frozen}}
  - relu
  - head: {type: Linear, in_features: 8, out_features: 3}
""" + CLS_TRAIN.replace("WRT", "[Param]")
    trainer = prepare(spec, cls_npz)
    before = {k: np.asarray(v) for k, v in flat_weights(trainer.model).items()}
    trainer.fit()
    after = flat_weights(trainer.model)
    np.testing.assert_array_equal(after["body/kernel"], before["body/kernel"])
    for k in ("body/bias", "head/kernel", "head/bias"):
        assert not np.array_equal(after[k], before[k]), k


def test_lora_trains_only_lora_params(cls_npz: Path) -> None:
    spec = CLS_HEAD + """blocks:
  MLP:
    args: {d: int}
    layers:
      - fc1: {type: Linear, in_features: "${d}", out_features: 16}
      - relu
      - fc2: {type: Linear, in_features: 16, out_features: "${d}"}
layers:
  - mlp: {type: MLP, d: 4, lora: {rank: 2, targets: [fc2]}}
  - head: {type: Linear, in_features: 4, out_features: 3, lora: {rank: 2}}
""" + CLS_TRAIN.replace("WRT", "[LoRAParam]").replace("epochs: 3", "epochs: 4")
    trainer = prepare(spec, cls_npz)
    model = trainer.model
    assert isinstance(model.head, nnx.LoRA) and isinstance(model.head.base_module, nnx.Linear)
    assert isinstance(model.mlp.fc2, nnx.LoRA) and isinstance(model.mlp.fc1, nnx.Linear)
    assert type(model.head.lora_a) is nnx.LoRAParam and type(model.mlp.fc2.lora_b) is nnx.LoRAParam
    lora_keys = {"head/lora_a", "head/lora_b", "mlp/fc2/lora_a", "mlp/fc2/lora_b"}
    assert set(trainer.params) == lora_keys
    before = {k: np.asarray(v) for k, v in flat_weights(model).items()}
    result = trainer.fit()
    after = flat_weights(model)
    for k in before:
        if k in lora_keys:
            assert not np.array_equal(after[k], before[k]), k
        else:
            np.testing.assert_array_equal(after[k], before[k], err_msg=k)
    assert result.history[-1]["train"]["loss"] < result.history[0]["train"]["loss"]


def test_lora_errors_are_located() -> None:
    import nnx_build
    from nnx_build.errors import SpecErrors
    from nnx_build.spec_io import load_spec

    spec = CLS_HEAD + """layers:
  - conv: {type: Conv, in_features: 4, out_features: 4, kernel_size: [1], lora: {rank: 2}}
  - head: {type: Linear, in_features: 4, out_features: 3, lora: {rank: 0}}
"""
    with pytest.raises(SpecErrors) as e:
        nnx_build.build(spec.replace("rank: 0", "rank: 1"))
    assert "has no Linear layer to wrap" in str(e.value) and e.value.errors[0].loc.line == 7
    with pytest.raises(SpecErrors) as e:
        nnx_build.build(spec)
    assert "greater than 0" in str(e.value)
    assert load_spec(spec).layers[1].fields["lora"] == {"rank": 0}


def _history(result) -> list[tuple[float, float]]:
    return [(h["train"]["loss"], h["eval"]["loss"]) for h in result.history]


def test_resume_continues_the_same_curve(tmp_path: Path, reg_npz: Path) -> None:
    _, straight = train(REG_SPEC, reg_npz, out=tmp_path / "a")
    _, first = train(REG_SPEC, reg_npz, out=tmp_path / "b", epochs=2)
    assert first.epochs == 2
    model, resumed = train(REG_SPEC, reg_npz, out=tmp_path / "b", resume=True)
    assert resumed.resumed_from == first.step and resumed.epochs == 4
    assert _history(resumed) == _history(straight)  # bit for bit: same batches, dropout keys, schedule
    final = read_model_weights(tmp_path / "a")
    for k, v in flat_weights(model).items():
        np.testing.assert_array_equal(v, final[k], err_msg=k)


def test_checkpoint_layout_and_atomic_writes(tmp_path: Path, reg_npz: Path) -> None:
    out = tmp_path / "ckpt"
    model, result = train(REG_SPEC, reg_npz, out=out, epochs=4)
    steps = sorted(int(p.name) for p in out.iterdir())
    assert steps == [result.step // 4 * i for i in (2, 3, 4)]  # one per epoch, the last three kept
    assert {p.name for p in (out / str(steps[-1])).iterdir()} >= {"model", "opt_state", "meta"}
    assert not [p for p in out.rglob("*") if "tmp" in p.name]  # written to a tmp dir, renamed
    # the model item is nnx.to_pure_dict of the non-RNG state
    pure = nnx.to_pure_dict(nnx.state(model, nnx.Not(nnx.RngState)))
    weights = read_model_weights(out)
    assert set(weights) == {"/".join(map(str, p)) for p, _ in nnx.to_flat_state(nnx.state(model, nnx.Not(nnx.RngState)))}
    np.testing.assert_array_equal(weights["out/kernel"], pure["out"]["kernel"])
    # an interrupted save leaves only a tmp folder, which is never taken for a checkpoint
    (out / f"{steps[-1] + 10}.orbax-checkpoint-tmp-1234").mkdir()
    with CheckpointStore(out) as store:
        assert store.latest_step() == steps[-1]
    np.testing.assert_array_equal(read_model_weights(out)["out/kernel"], weights["out/kernel"])


def test_cli_train_json_and_resume(tmp_path: Path, reg_npz: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "reg.yaml"
    spec.write_text(REG_SPEC)
    out = tmp_path / "ckpt"
    base = ["train", str(spec), "--data", str(reg_npz), "--out", str(out), "--no-progress", "--json"]
    assert main([*base, "--epochs", "1"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["epochs"] == 1 and set(last) >= {"epochs", "train", "eval"}
    assert set(last["eval"]) == {"loss", "mean_absolute_error"}
    assert main(base) == 2  # checkpoints exist: --resume or --force
    assert "--resume" in capsys.readouterr().err
    assert main([*base, "--resume", "--epochs", "2"]) == 0
    text = capsys.readouterr().out
    assert "resumed" in text
    assert json.loads(text.strip().splitlines()[-1])["epochs"] == 2


def test_data_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, inputs=np.zeros((4, 2), np.float32), y=np.zeros((4, 3), np.float32))
    with pytest.raises(DataError, match="no array for input 'x'"):
        prepare(REG_SPEC, bad)
    np.savez(bad, x=np.zeros((4, 5), np.float32), y=np.zeros((4, 3), np.float32))
    with pytest.raises(DataError, match=r"array 'x' has shape \(4, 5\)"):
        prepare(REG_SPEC, bad)
    np.savez(bad, x=np.zeros((4, 2), np.float32), y=np.zeros((5, 3), np.float32))
    with pytest.raises(DataError, match="different numbers of examples"):
        prepare(REG_SPEC, bad)


def test_nothing_to_train(cls_npz: Path) -> None:
    spec = CLS_HEAD + "layers:\n  - head: {type: Linear, in_features: 4, out_features: 3}\n" + CLS_TRAIN.replace("WRT", "[LoRAParam]")
    with pytest.raises(TrainError, match="no variable of kind LoRAParam"):
        prepare(spec, cls_npz)


def test_stateless_optimizer_checkpoints_and_resumes(tmp_path: Path, reg_npz: Path) -> None:
    # plain sgd keeps no state: orbax refuses an empty item, so the checkpoint has no opt_state
    spec = (REG_SPEC.replace("type: adam", "type: sgd").replace("  clip: 1.0\n", "")
            .replace('{type: cosine_decay_schedule, init_value: 1e-2, decay_steps: "${total_steps}"}', "0.05"))
    assert "sgd" in spec and "clip" not in spec and "schedule" not in spec
    _, straight = train(spec, reg_npz, out=tmp_path / "a")
    _, first = train(spec, reg_npz, out=tmp_path / "b", epochs=2)
    last = tmp_path / "b" / str(first.step)
    assert {p.name for p in last.iterdir()} >= {"model", "meta"} and not (last / "opt_state").exists()
    model, resumed = train(spec, reg_npz, out=tmp_path / "b", resume=True)
    assert resumed.resumed_from == first.step
    assert _history(resumed) == _history(straight)
    final = read_model_weights(tmp_path / "a")
    for k, v in flat_weights(model).items():
        np.testing.assert_array_equal(v, final[k], err_msg=k)
