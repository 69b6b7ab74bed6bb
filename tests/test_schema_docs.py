"""The committed JSON Schema and spec reference are current, and every spec validates."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from nnx_build.docgen import reference_markdown
from nnx_build.jsonschema import spec_json_schema

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(p for p in (ROOT / "specs").rglob("*") if p.suffix in (".yaml", ".yml", ".json"))


@pytest.fixture(scope="module")
def schema() -> dict:
    return spec_json_schema()


def test_committed_schema_is_current(schema: dict) -> None:
    committed = json.loads((ROOT / "schema" / "nnx-spec.schema.json").read_text())
    assert committed == schema, "run `make schema` and commit schema/nnx-spec.schema.json"


def test_committed_reference_is_current() -> None:
    committed = (ROOT / "docs" / "spec-reference.md").read_text()
    assert committed == reference_markdown(), "run `make schema` and commit docs/spec-reference.md"


def test_schema_is_valid_draft_2020_12(schema: dict) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_spec_validates_against_the_schema(schema: dict, path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message[:200]}" for e in errors[:3]]


@pytest.mark.parametrize(
    "bad",
    [
        {"layers": [{"linear": {"type": "Linear", "in_features": 2, "out_feature": 3}}]},
        {"layers": [{"linear": {"type": "Linear", "in_features": "two", "out_features": 3}}]},
        {"layers": ["relu"], "layer": []},
    ],
    ids=["unknown-field", "wrong-type", "unknown-top-level"],
)
def test_schema_rejects_what_the_loader_rejects(schema: dict, bad: dict) -> None:
    data = {"format": 1, "name": "m", "inputs": {"x": [None, 2]}, **bad}
    data["inputs"] = {"x": {"shape": ["batch", 2]}}
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(data))


def test_spec_headers_point_at_the_schema() -> None:
    for path in SPECS:
        if path.suffix == ".json":
            continue
        first = path.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), path
        target = (path.parent / first.split("$schema=", 1)[1].strip()).resolve()
        assert target == ROOT / "schema" / "nnx-spec.schema.json", path
