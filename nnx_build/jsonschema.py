"""The JSON Schema of specs, generated from the pydantic models and the registry.

Every layer and op contributes one step variant (``type`` is a ``const``), so an editor
completes field names per type; number fields also accept ``${...}`` expressions.
"""

from __future__ import annotations

import copy
from typing import Any

from . import registry
from .schemas.spec import Spec, Step

__all__ = ["spec_json_schema", "SCHEMA_ID"]

SCHEMA_ID = "https://nnx-build.dev/schema/nnx-spec.schema.json"
_EXPR = {"type": "string", "pattern": r"\$\{.*\}", "description": "a ${...} expression"}
_COMMON = ("name", "in", "as", "repeat", "scan", "kinds", "sharding", "doc")


def _allow_expressions(schema: dict[str, Any]) -> dict[str, Any]:
    """Lets every non-string field also take a ``${...}`` string."""
    out = copy.deepcopy(schema)
    for name, prop in out.get("properties", {}).items():
        if name == "type":
            continue
        if prop.get("type") == "string" and "enum" not in prop and "const" not in prop:
            continue
        out["properties"][name] = {"anyOf": [prop, _EXPR], **{k: prop[k] for k in ("description", "title") if k in prop}}
    return out


def _step_variants(defs: dict[str, Any]) -> list[dict[str, Any]]:
    common = Step.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    defs.update(common.pop("$defs", {}))
    common_props = {k: v for k, v in common["properties"].items() if k in _COMMON}
    variants = []
    for entry in registry.entries():
        schema = entry.config.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(schema.pop("$defs", {}))
        schema = _allow_expressions(schema)
        props = {**common_props, **schema.get("properties", {})}
        props["type"] = {"const": entry.name}
        variant = {
            "title": entry.name,
            "description": entry.doc.split("\n\n")[0],
            "type": "object",
            "properties": props,
            "required": sorted({"type", *schema.get("required", [])} - {"type"}) + ["type"],
            "additionalProperties": False,
        }
        variants.append(variant)
    block_use = {
        "title": "block",
        "description": "use of a block declared under 'blocks:' (its arguments as fields)",
        "type": "object",
        "properties": {**common_props, "type": {"type": "string", "not": {"enum": [e.name for e in registry.entries()]}}},
        "required": ["type"],
        "additionalProperties": True,
    }
    variants.append(block_use)
    return variants


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a spec file."""
    schema = Spec.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    defs: dict[str, Any] = schema.pop("$defs", {})
    variants = _step_variants(defs)
    defs["StepBody"] = {"anyOf": [{"$ref": f"#/$defs/step_{v['title'].replace('>', '_')}"} for v in variants]}
    for v in variants:
        defs[f"step_{v['title'].replace('>', '_')}"] = v
    defs["Step"] = {
        "description": "a step: `- relu`, `- {type: reshape, shape: [-1]}` or `- name: {type: Linear, ...}`",
        "anyOf": [
            {"type": "string", "description": "an op without arguments, e.g. relu"},
            {"$ref": "#/$defs/StepBody"},
            {
                "type": "object",
                "description": "a named step: the name becomes the module attribute",
                "minProperties": 1,
                "maxProperties": 1,
                "additionalProperties": {"$ref": "#/$defs/StepBody"},
            },
        ],
    }
    schema["properties"]["format"] = {"const": 1, "description": "spec format version"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "$defs": defs,
    }
