"""The train section by name: optimizers, schedules, clipping, losses, metrics; located errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from train_helpers import REG_SPEC

from nnx_build.builder import compile as compile_spec
from nnx_build.errors import SpecErrors
from nnx_build.spec_io import load_spec, spec_locator
from nnx_build.training import make_plan
from nnx_build.training.objectives import LOSSES, METRICS

LOSS_FNS = {name: entry.fn for name, entry in LOSSES.items()}
METRIC_FNS = {name: entry.fn for name, entry in METRICS.items()}

BASE = """
format: 1
name: m
inputs: {x: [batch, 4]}
layers:
  - head: {type: Linear, in_features: 4, out_features: 3}
train:
"""


def plan_of(train_yaml: str):
    program = compile_spec(BASE + train_yaml)
    return make_plan(program, spec_locator(program.spec))


def errors_of(train_yaml: str) -> list[str]:
    with pytest.raises(SpecErrors) as e:
        plan_of(train_yaml)
    return [str(x) for x in e.value.errors]


def test_names_are_checked_at_load_with_did_you_mean() -> None:
    with pytest.raises(SpecErrors) as e:
        load_spec(BASE + "  loss: mean_squared_eror\n  optimizer: {type: adamm}\n  metrics: [acuracy]\n")
    text = "\n".join(str(x) for x in e.value.errors)
    assert "did you mean 'mean_squared_error'" in text
    assert "did you mean 'adam'" in text
    assert "did you mean 'accuracy'" in text
    assert all(x.loc.line > 6 for x in e.value.errors)  # located in the train section


def test_arguments_and_references_are_checked_against_optax_and_the_model() -> None:
    errs = errors_of(
        "  targets: {y: int32}\n"
        "  loss: {type: softmax_cross_entropy_with_integer_labels, output: haed, label_smoothin: 0.1}\n"
        "  metrics: [{type: accuracy, target: z}]\n"
        "  optimizer: {type: adamw, learning_rate: 0.001, weight_decy: 0.1}\n"
        "  clip: {type: clip_by_global_norm}\n"
        "  wrt: [Parm]\n"
    )
    text = "\n".join(errs)
    assert "output 'haed' is not an output of the model (did you mean 'head'?)" in text
    assert "has no argument 'label_smoothin' (did you mean 'label_smoothing'?)" in text
    assert "target 'z' is not declared" in text
    assert "optimizer 'adamw' has no argument 'weight_decy' (did you mean 'weight_decay'?)" in text
    assert "'clip_by_global_norm' needs argument 'max_norm'" in text
    assert "unknown variable kind 'Parm' in wrt (did you mean 'Param'?)" in text
    assert len(errs) == 6


@pytest.mark.parametrize(
    "opt", ["adam", "adamw", "sgd", "rmsprop", "lion", "lamb", "adagrad", "nadam", "adabelief", "novograd"]
)
def test_optimizers_by_name(opt: str) -> None:
    plan = plan_of(f"  loss: mean_squared_error\n  optimizer: {{type: {opt}, learning_rate: 1e-2}}\n")
    tx = plan.make_tx(steps_per_epoch=10, epochs=2)
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    grads = {"w": jnp.array([1.0, -1.0, 0.5])}
    updates, _ = tx.update(grads, state, params)
    ref_updates, _ = getattr(optax, opt)(1e-2).update(grads, getattr(optax, opt)(1e-2).init(params), params)
    np.testing.assert_allclose(updates["w"], ref_updates["w"], rtol=1e-6)


def test_schedule_uses_total_steps() -> None:
    plan = plan_of(
        "  loss: mean_squared_error\n"
        "  epochs: 5\n"
        "  optimizer:\n"
        "    type: sgd\n"
        "    learning_rate: {type: warmup_cosine_decay_schedule, init_value: 0.0, peak_value: 1.0,"
        " warmup_steps: '${steps_per_epoch}', decay_steps: '${total_steps}'}\n"
    )
    tx = plan.make_tx(steps_per_epoch=10, epochs=plan.train.epochs)
    params = {"w": jnp.zeros(())}
    state = tx.init(params)
    lrs = []
    for _ in range(50):
        updates, state = tx.update({"w": jnp.ones(())}, state, params)
        lrs.append(-float(updates["w"]))
    ref = optax.warmup_cosine_decay_schedule(0.0, 1.0, 10, 50)
    np.testing.assert_allclose(lrs, [float(ref(i)) for i in range(50)], atol=1e-6)


def test_clipping_number_is_global_norm() -> None:
    plan = plan_of("  loss: mean_squared_error\n  optimizer: {type: sgd, learning_rate: 1.0}\n  clip: 0.5\n")
    tx = plan.make_tx(1, 1)
    params = {"a": jnp.zeros(2), "b": jnp.zeros(2)}
    updates, _ = tx.update({"a": jnp.array([3.0, 0.0]), "b": jnp.array([0.0, 4.0])}, tx.init(params), params)
    norm = float(optax.tree.norm(updates))
    assert norm == pytest.approx(0.5, rel=1e-5)


def _rand(shape, seed=0):
    return jax.random.normal(jax.random.key(seed), shape)


LOSS_REFS = {
    "mean_squared_error": lambda p, t: optax.squared_error(p, t).mean(-1),
    "mean_absolute_error": lambda p, t: jnp.abs(p - t).mean(-1),
    "huber": lambda p, t: optax.huber_loss(p, t).mean(-1),
    "log_cosh": lambda p, t: optax.log_cosh(p, t).mean(-1),
    "softmax_cross_entropy": lambda p, t: optax.softmax_cross_entropy(p, jax.nn.softmax(t)),
    "sigmoid_binary_cross_entropy": lambda p, t: optax.sigmoid_binary_cross_entropy(p, jax.nn.sigmoid(t)).mean(-1),
    "sigmoid_focal_loss": lambda p, t: optax.sigmoid_focal_loss(p, jax.nn.sigmoid(t)).mean(-1),
    "hinge": lambda p, t: optax.hinge_loss(p, jnp.sign(t)).mean(-1),
    "cosine_distance": lambda p, t: optax.cosine_distance(p, t),
}


@pytest.mark.parametrize("name", sorted(LOSS_FNS))
def test_losses_match_optax(name: str) -> None:
    pred = _rand((6, 5), 0)
    if name == "softmax_cross_entropy_with_integer_labels":
        labels = jnp.array([0, 4, 2, 1, 3, 0], jnp.int32)
        np.testing.assert_allclose(LOSS_FNS[name](pred, labels), optax.softmax_cross_entropy_with_integer_labels(pred, labels), rtol=1e-6)
        smooth = optax.softmax_cross_entropy(pred, optax.smooth_labels(jax.nn.one_hot(labels, 5), 0.1))
        np.testing.assert_allclose(LOSS_FNS[name](pred, labels, label_smoothing=0.1), smooth, rtol=1e-6)
        return
    raw = _rand((6, 5), 1)
    target = {"softmax_cross_entropy": jax.nn.softmax(raw), "sigmoid_binary_cross_entropy": jax.nn.sigmoid(raw),
              "sigmoid_focal_loss": jax.nn.sigmoid(raw), "hinge": jnp.sign(raw)}.get(name, raw)
    np.testing.assert_allclose(LOSS_FNS[name](pred, target), LOSS_REFS[name](pred, raw), rtol=1e-5, atol=1e-6)


def test_metrics() -> None:
    logits = jnp.array([[2.0, 1.0, 0.0], [0.0, 1.0, 3.0], [1.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    labels = jnp.array([0, 2, 0, 1])
    np.testing.assert_array_equal(METRIC_FNS["accuracy"](logits, labels), [1, 1, 0, 0])
    np.testing.assert_array_equal(METRIC_FNS["accuracy"](logits, jax.nn.one_hot(labels, 3)), [1, 1, 0, 0])
    np.testing.assert_array_equal(METRIC_FNS["top_k_accuracy"](logits, labels, k=2), [1, 1, 1, 0])
    np.testing.assert_array_equal(
        METRIC_FNS["binary_accuracy"](jnp.array([[1.0, -1.0], [2.0, 3.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]])), [1.0, 0.5]
    )


def test_reg_spec_plan() -> None:
    program = compile_spec(REG_SPEC)
    plan = make_plan(program)
    assert plan.inputs == ("x",) and plan.outputs == ("out",)
    assert plan.metric_keys == ("loss", "mean_absolute_error")
    assert plan.wrt_names == ("Param",)
