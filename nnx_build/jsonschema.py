"""The JSON Schema of specs, generated from the pydantic models and the registry.

Every layer and op contributes one step variant (``type`` is a ``const``), so an editor
completes field names per type; number fields also accept ``${...}`` expressions.
"""

from __future__ import annotations

from typing import Any

from . import registry
from .schemas.spec import Spec, Step

__all__ = ["SCHEMA_ID", "spec_json_schema"]

SCHEMA_ID = "https://nnx-build.dev/schema/nnx-spec.schema.json"
_EXPR = {"$ref": "#/$defs/Expression"}
_EXPR_DEF = {"type": "string", "pattern": r"\$\{.*\}", "description": "a ${...} expression"}


def _allow_expressions(schema: Any, top: bool = True) -> Any:
    """Lets every number, boolean and choice inside ``schema`` also be a ``${...}`` string."""
    if isinstance(schema, list):
        return [_allow_expressions(s, False) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: v for k, v in schema.items()}
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if key in out:
            out[key] = _allow_expressions(out[key], False)
    if isinstance(out.get("items"), dict):
        out["items"] = _allow_expressions(out["items"], False)
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _allow_expressions(out["additionalProperties"], False)
    if "properties" in out:
        out["properties"] = {
            k: (v if k == "type" and top else _allow_expressions(v, False)) for k, v in out["properties"].items()
        }
    if not top and (out.get("type") in ("integer", "number", "boolean") or "enum" in out):
        return {"anyOf": [out, _EXPR]}
    return out


# models whose before-validators accept a shorthand: def name -> the shorthand's schema
def _shorthand_of(name: str, schema: dict[str, Any]) -> dict[str, Any] | None:
    props = schema.get("properties", {})
    if name in ("InputSpec", "ArrayInput", "OutputExpect") and "shape" in props:
        return props["shape"]
    if name == "ArgSpec" and "type" in props:
        return props["type"]
    if name in ("ScheduleSpec", "OptimizerSpec", "LossSpec", "MetricSpec"):
        return {"type": "string", "enum": props["type"].get("enum", [])}
    if name == "ClipSpec":
        return {"anyOf": [{"type": "string", "enum": props["type"].get("enum", [])}, {"type": "number"}]}
    if name == "TargetSpec":
        return {"anyOf": [props["dtype"], {"type": "null"}]}
    return None


def _train_shorthands(schema: dict[str, Any]) -> dict[str, Any]:
    """TrainSpec: a single loss, a single wrt kind, a list of target names."""
    props = dict(schema["properties"])
    props["loss"] = {"anyOf": [props["loss"], props["loss"]["items"]], "description": props["loss"].get("description", "")}
    props["wrt"] = {"anyOf": [props["wrt"], {"type": "string"}], "description": props["wrt"].get("description", "")}
    props["targets"] = {"anyOf": [props["targets"], {"type": "array", "items": {"type": "string"}}]}
    return {**schema, "properties": props}


def _common_fields() -> tuple[str, ...]:
    """The fields every step has besides ``type`` (``name``, ``in``, ``repeat`` ...), as written."""
    return tuple(info.alias or name for name, info in Step.model_fields.items() if name != "type")


def _step_variants(defs: dict[str, Any]) -> list[dict[str, Any]]:
    common_fields = _common_fields()
    common = Step.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    defs.update(common.pop("$defs", {}))
    for k, v in common["properties"].items():
        if k in common_fields:
            defs[f"step_field_{k}"] = v
    common_props = {k: {"$ref": f"#/$defs/step_field_{k}"} for k in common["properties"] if k in common_fields}
    from .builder.lora import LoRAOption

    lora = LoRAOption.model_json_schema(ref_template="#/$defs/{model}")
    defs.update(lora.pop("$defs", {}))
    defs["LoRAOption"] = lora
    lora_prop = {"$ref": "#/$defs/LoRAOption", "description": "wrap this step's Linear layers with LoRA"}
    variants = []
    for entry in registry.entries():
        schema = entry.config.model_json_schema(ref_template="#/$defs/{model}")
        defs.update({k: _allow_expressions(v) for k, v in schema.pop("$defs", {}).items()})
        schema = _allow_expressions(schema)
        props = {**common_props, **schema.get("properties", {})}
        if entry.kind == "layer" and "lora" not in props:
            props["lora"] = lora_prop
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
        "properties": {
            **common_props,
            "lora": lora_prop,
            "type": {"type": "string", "not": {"enum": [e.name for e in registry.entries()]}},
        },
        "required": ["type"],
        "additionalProperties": True,
    }
    variants.append(block_use)
    return variants


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a spec file."""
    schema = Spec.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    defs: dict[str, Any] = schema.pop("$defs", {})
    defs["Expression"] = _EXPR_DEF
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
                "additionalProperties": {
                    "anyOf": [{"$ref": "#/$defs/StepBody"}, {"type": "string", "description": "an op without arguments"}]
                },
            },
        ],
    }
    schema["properties"]["format"] = {"const": 1, "description": "spec format version"}
    if "TrainSpec" in defs:
        defs["TrainSpec"] = _train_shorthands(defs["TrainSpec"])
    for name, d in list(defs.items()):
        alt = _shorthand_of(name, d)
        if alt is not None:
            defs[name] = {"anyOf": [d, alt]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "$defs": defs,
    }
