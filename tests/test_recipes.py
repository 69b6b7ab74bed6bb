"""The recipes of CONTRIBUTING.md, followed once each: a layer, an op, a loss and a weight
format added the way the recipe says are seen in the schema, the reference, the table,
and work in a build, a spec test or a weights round trip.

(The export target recipe is followed by tests/exporters/test_targets.py.) Each test
adds to a copy of the table, so nothing stays registered after it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from pydantic import Field

import nnx_build
from nnx_build import layer_table
from nnx_build.docgen import reference_markdown
from nnx_build.errors import SpecErrors
from nnx_build.jsonschema import spec_json_schema
from nnx_build.layers._base import feature_check, nnx_layer, op
from nnx_build.schemas.common import Config
from nnx_build.testing import SpecSession
from nnx_build.training.objectives import LOSSES, Objective
from nnx_build.weights import FORMATS, WeightFormat, WeightsError, read_weights

HEAD = "format: 1\nname: recipe\nseed: 0\ninputs: {x: [batch, 3]}\n"


@pytest.fixture
def table_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations go to a copy of the layer table, dropped after the test."""
    nnx_build.registry.names()  # the built-in catalogue first
    monkeypatch.setattr(layer_table, "_TABLE", dict(layer_table._TABLE))


# ---- a layer -----------------------------------------------------------------------------


class Scale(nnx.Module):
    """An NNX layer the catalogue does not have: one learned scale per feature."""

    def __init__(self, num_features: int, init: float = 2.0, *, rngs: nnx.Rngs):
        self.scale = nnx.Param(jnp.full((num_features,), init))

    def __call__(self, x: Any) -> Any:
        return x * self.scale[...]


class ScaleConfig(Config):
    """``Scale``: multiplies by one learned scale per feature. Input and output ``(..., num_features)``."""

    type: Literal["Scale"] = "Scale"
    positional = ("num_features",)
    num_features: int = Field(gt=0)
    init: float = 2.0


def test_add_a_layer(table_copy: None) -> None:
    nnx_layer(ScaleConfig, Scale, check=feature_check("num_features"))  # step 3

    variant = spec_json_schema()["$defs"]["step_Scale"]
    assert {"num_features", "init", "name", "in"} <= set(variant["properties"])
    assert variant["description"].startswith("``Scale``: multiplies by one learned scale per feature")
    assert "#### Scale" in reference_markdown()

    model = nnx_build.build(HEAD + "layers:\n  - s: {type: Scale, num_features: 3, init: 0.5}\n")
    assert isinstance(model.s, Scale)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(model(x), 0.5 * x)
    with pytest.raises(SpecErrors, match=r"expects num_features=4 to match the last dimension .* set num_features: 3"):
        nnx_build.check(HEAD + "layers:\n  - s: {type: Scale, num_features: 4}\n")


# ---- an op -------------------------------------------------------------------------------


class SquareDiffConfig(Config):
    """``(a - b) ** 2``, elementwise with broadcasting: the squared difference of two inputs."""

    type: Literal["square_diff"] = "square_diff"


def square_diff(cfg: SquareDiffConfig, a: Any, b: Any) -> Any:
    return jnp.square(a - b)


def test_add_an_op(table_copy: None) -> None:
    op(SquareDiffConfig)(square_diff)  # step 2: the decorator, applied here so it lands in the copy

    assert "step_square_diff" in spec_json_schema()["$defs"]
    assert "#### square_diff" in reference_markdown()
    spec = HEAD + "layers:\n  - a: {type: Linear, in_features: 3, out_features: 3}\n  - {type: square_diff, in: [a, x]}\n"
    model = nnx_build.build(spec)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(model(x), np.square(model.a(x) - x), rtol=1e-6)


# ---- a loss ------------------------------------------------------------------------------


def half_squared_error(pred: Any, target: Any, scale: float = 0.5) -> Any:
    """One value per example: ``scale`` times the mean squared difference."""
    return scale * jnp.mean(jnp.square(pred - target).reshape(pred.shape[0], -1), axis=1)


LEARNS = HEAD + """\
layers:
  - out: {type: Linear, in_features: 3, out_features: 2}
train:
  loss: {type: half_squared_error, scale: 0.25}
  optimizer: {type: sgd, learning_rate: 0.1}
tests:
  - name: learns
    train_step: {loss: half_squared_error, learning_rate: 0.1, steps: 2}
"""


def test_add_a_loss(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    loss = Objective("half_squared_error", "scale * mean of (prediction - target)**2",
                     fn_ref=f"{__name__}:half_squared_error")
    monkeypatch.setitem(LOSSES, loss.name, loss)  # step 2: one line in the table

    defs = spec_json_schema()["$defs"]
    assert "half_squared_error" in defs["LossSpec"]["anyOf"][0]["properties"]["type"]["enum"]
    assert "half_squared_error" in defs["TrainStep"]["properties"]["loss"]["enum"]
    nnx_build.check(LEARNS)  # the train: section and the spec test validate, its argument too
    with pytest.raises(SpecErrors, match="half_squared_error has no argument 'scal'"):
        nnx_build.check(LEARNS.replace("scale: 0.25", "scal: 0.25"))

    path = tmp_path / "recipe.yaml"
    path.write_text(LEARNS)
    session = SpecSession(path)
    (case,) = session.cases()
    result = session.check(case)
    assert result.notes and result.notes[0].startswith("half_squared_error loss ")


# ---- a weight format ---------------------------------------------------------------------


def _json_detect(path: Path) -> bool:
    return path.is_file() and path.suffix == ".wjson"


def _json_load(path: Path) -> dict[str, np.ndarray]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise WeightsError(f"cannot read weights file {path}: {e}") from e
    return {k: np.asarray(v["values"], dtype=v["dtype"]) for k, v in data.items()}


def _json_save(weights: Any, path: Path) -> None:
    arrays = {k: np.asarray(v) for k, v in weights.items()}
    path.write_text(json.dumps({k: {"dtype": str(a.dtype), "values": a.tolist()} for k, a in arrays.items()}))


def test_add_a_weight_format(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fmt = WeightFormat("wjson", ".wjson", _json_detect, _json_load, _json_save)
    monkeypatch.setitem(FORMATS, fmt.name, fmt)  # step 2: one line in the table

    spec = HEAD + "layers:\n  - out: {type: Linear, in_features: 3, out_features: 2}\n"
    model = nnx_build.build(spec, seed=1)
    path = nnx_build.save_weights(model, tmp_path / "trained.wjson")  # chosen by its suffix
    assert set(json.loads(Path(path).read_text())) == {"out/kernel", "out/bias"}

    again = nnx_build.build(spec, seed=2, weights=path)  # detected when reading
    np.testing.assert_array_equal(again.out.kernel[...], model.out.kernel[...])
    assert set(read_weights(path)) == {"out/kernel", "out/bias"}
    other = tmp_path / "weights.dat"
    other.write_bytes(b"\0")
    with pytest.raises(WeightsError, match=r"unknown weights format; expected one of: .*wjson"):
        read_weights(other)
