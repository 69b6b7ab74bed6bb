"""One table per extension point: losses and metrics; one train step for `train` and the spec tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import nnx_build.training
from nnx_build.cli import main
from nnx_build.jsonschema import spec_json_schema
from nnx_build.training import LOSSES, METRICS, make_train_step
from nnx_build.training.objectives import lookup

HEAVY = ("jax", "flax", "optax", "orbax")


def _enum(schema: dict, model: str) -> list[str]:
    (obj,) = [s for s in schema["$defs"][model]["anyOf"] if "properties" in s]
    return obj["properties"]["type"]["enum"]


def test_schema_enums_come_from_the_tables() -> None:
    schema = spec_json_schema()
    assert _enum(schema, "LossSpec") == list(LOSSES)
    assert _enum(schema, "MetricSpec") == list(METRICS)


def test_schemas_and_the_tables_import_no_jax() -> None:
    code = "import nnx_build.schemas, nnx_build.training.objectives, sys; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert not set(out) & set(HEAVY)


@pytest.mark.parametrize(("table", "name"), [*((LOSSES, n) for n in LOSSES), *((METRICS, n) for n in METRICS)])
def test_every_entry_resolves_and_checks_its_arguments(table: dict, name: str) -> None:
    entry = table[name]
    assert callable(entry.fn) and entry.doc
    assert entry.check_args({}) == []
    (problem,) = entry.check_args({"no_such_argument": 1})
    assert problem[0] == "no_such_argument" and "has no argument" in problem[1]
    for arg in entry.arguments:
        assert entry.check_args({arg: [1, 2]})[0][0] == arg  # arguments are numbers


def test_spec_test_loss_names_are_aliases_of_the_table() -> None:
    assert lookup(LOSSES, "mse") is LOSSES["mean_squared_error"]
    assert lookup(LOSSES, "cross_entropy") is LOSSES["softmax_cross_entropy_with_integer_labels"]
    with pytest.raises(KeyError, match="did you mean 'huber'"):
        lookup(LOSSES, "hubber")


def test_make_train_step_matches_a_hand_written_sgd_step() -> None:
    model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    x = jnp.asarray(np.random.default_rng(0).standard_normal((5, 3)), jnp.float32)
    y = jnp.ones((5, 2), jnp.float32)
    w0, b0 = np.asarray(model.kernel[...]), np.asarray(model.bias[...])
    step = make_train_step(model, lambda m, b: {"loss": LOSSES["mean_squared_error"].fn(m(b["x"]), b["y"])}, optax.sgd(0.1))
    state, values = step(step.init(), {"x": x, "y": y})
    # by hand: loss = mean((xW + b - y)^2); dL/dW = 2 x^T (xW + b - y) / (5 * 2)
    r = np.asarray(x) @ w0 + b0 - 1.0
    np.testing.assert_allclose(float(values["loss"]), np.mean(r**2), rtol=1e-5)
    np.testing.assert_allclose(state.params["kernel"], w0 - 0.1 * 2 * np.asarray(x).T @ r / 10, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state.params["bias"], b0 - 0.1 * 2 * r.sum(0) / 10, rtol=1e-5, atol=1e-6)
    assert int(state.step) == 1 and step.kinds == ("Param",)
    step.write_back(state)
    np.testing.assert_array_equal(np.asarray(model.kernel[...]), np.asarray(state.params["kernel"]))


def test_spec_tests_train_with_the_shared_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    made = []
    real = make_train_step

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        made.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(nnx_build.training, "make_train_step", spy)
    spec = tmp_path / "t.yaml"
    spec.write_text("""
format: 1
name: t
inputs: {x: [batch, 3]}
layers:
  - head: {type: Linear, in_features: 3, out_features: 2}
tests:
  - name: learns
    inputs: {x: [4, 3]}
    train_step: {loss: cross_entropy, optimizer: adam, learning_rate: 0.1}
""")
    assert main(["test", str(spec)]) == 0
    assert len(made) == 1
    assert "cross_entropy loss" in capsys.readouterr().out
