"""The schema's lists come from the tables and models they describe, not from copies.

``train_step.loss`` of a spec test takes every loss of the training table (and its
aliases); the fields every step shares are the ``Step`` model's fields.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import Field, create_model

from nnx_build import jsonschema
from nnx_build.jsonschema import spec_json_schema
from nnx_build.schemas.spec import Step
from nnx_build.schemas.tests import TrainStep
from nnx_build.training.objectives import LOSSES


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return spec_json_schema()


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_a_spec_test_trains_with_every_loss_of_the_table(name: str) -> None:
    assert TrainStep.model_validate({"loss": name}).loss == name


def test_the_spec_test_loss_enum_is_the_table_and_its_aliases(schema: dict[str, Any]) -> None:
    enum = schema["$defs"]["TrainStep"]["properties"]["loss"]["enum"]
    aliases = [a for loss in LOSSES.values() for a in loss.aliases]
    assert sorted(enum) == sorted([*LOSSES, *aliases])
    assert {"mse", "cross_entropy"} <= set(enum)  # what specs have written since the start


def test_every_step_field_is_a_field_of_every_step_variant(monkeypatch: pytest.MonkeyPatch) -> None:
    # a field added to Step reaches every variant without touching the schema generator
    wider = create_model("Step", __base__=Step, priority=(int, Field(default=0, description="a new common field")))
    monkeypatch.setattr(jsonschema, "Step", wider)
    defs = spec_json_schema()["$defs"]
    assert defs["step_field_priority"]["description"] == "a new common field"
    for name, variant in defs.items():
        if name.startswith("step_") and not name.startswith("step_field_"):
            assert variant["properties"]["priority"] == {"$ref": "#/$defs/step_field_priority"}, name
