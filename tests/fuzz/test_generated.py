"""Random specs generated from the layer schemas build abstractly or fail with located errors.

For every layer and op of the catalogue, a step is generated from the JSON Schema of
its pydantic model (required fields always, optional ones sometimes; integers mostly
small and inside the schema's bounds, sometimes zero, negative or huge), placed after
an input of random rank, dtype and sizes, optionally followed by a second generated
step, and run through compile and the abstract check (``nnx.eval_shape``: nothing is
allocated, budgets are checked first). The outcome must be a report or located
``SpecError``s.
"""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from nnx_build import registry
from nnx_build.builder.abstract import abstract_check
from nnx_build.builder.compiler import compile_spec
from nnx_build.loader import Limits
from nnx_build.spec_io import load_spec, spec_locator

from .conftest import fuzz, run_case

LIMITS = Limits(max_modules=400)
BUDGET = {"max_params": 10**9, "max_bytes": 2**32}
ENTRIES = [e for e in registry.entries() if e.kind != "call"]
STRINGS = ["normal", "zeros", "x", "h", "SAME", "VALID", "float32", "relu", "ij,jk->ik", "...", "bik,kj->bij", ""]


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def from_schema(schema: dict[str, Any], defs: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """A strategy for values of a JSON Schema, mostly valid, sometimes at or past its bounds."""
    schema = _resolve(schema, defs)
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema or "oneOf" in schema:
        return st.one_of([from_schema(s, defs, depth + 1) for s in schema.get("anyOf", schema.get("oneOf"))])
    kind = schema.get("type")
    if kind == "integer":
        lo = schema.get("minimum", schema.get("exclusiveMinimum", -3) + (1 if "exclusiveMinimum" in schema else 0))
        hi = schema.get("maximum", schema.get("exclusiveMaximum", 9) - (1 if "exclusiveMaximum" in schema else 0))
        lo, hi = max(lo, -3), min(hi, 9)
        valid = st.integers(lo, max(lo, hi))
        return st.one_of(valid, valid, valid, st.sampled_from([0, -1, 2**31, 10**6, 10**12]))
    if kind == "number":
        return st.one_of(st.floats(0, 1), st.sampled_from([0.0, -1.0, 1e30, float("inf")]))
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        return st.sampled_from(STRINGS)
    if kind == "null":
        return st.none()
    if kind == "array":
        if depth > 3:
            return st.just([])
        items = from_schema(schema.get("items", {"type": "integer"}), defs, depth + 1)
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 4), 4))
    if kind == "object" or "properties" in schema:
        if depth > 3:
            return st.just({})
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        fixed = {k: from_schema(v, defs, depth + 1) for k, v in props.items() if k in required}
        optional = {k: from_schema(v, defs, depth + 1) for k, v in props.items() if k not in required}
        return st.fixed_dictionaries(fixed, optional=optional)
    return st.sampled_from([1, "x", None, [1, 2]])


STEPS = {e.name: from_schema(*(lambda s: (s, s.get("$defs", {})))(e.config.model_json_schema())) for e in ENTRIES}


@st.composite
def generated_spec(draw) -> tuple[str, str]:
    entry = draw(st.sampled_from(ENTRIES), label="layer")
    rank = draw(st.integers(1, 4))
    shape: list[Any] = ["batch", *draw(st.lists(st.sampled_from([1, 2, 3, 4, 8, 16]), min_size=rank - 1, max_size=rank - 1))]
    dtype = draw(st.sampled_from(["float32", "float32", "int32", "bool"]))
    steps = []
    names = []
    for i, e in enumerate([entry] + ([draw(st.sampled_from(ENTRIES))] if draw(st.booleans()) else [])):
        cfg = dict(draw(STEPS[e.name]))
        cfg.pop("type", None)
        cfg = {"type": e.name, **cfg}
        if e.kind == "layer":
            steps.append({f"s{i}": cfg})
            names.append(f"s{i}")
        else:
            steps.append(cfg)
    spec = {"format": 1, "name": "gen", "inputs": {"x": {"shape": list(shape), "dtype": dtype}}, "layers": steps}
    if draw(st.sampled_from(["one input", "one input", "one input", "two inputs"])) == "two inputs":
        spec["inputs"]["y"] = {"shape": list(shape), "dtype": dtype}  # a second input: steps must say in:
        first = steps[0] if "type" in steps[0] else next(iter(steps[0].values()))
        first["in"] = draw(st.sampled_from([["x", "y"], "y", {"x": "x"}, ["x", "y", "x"]]))
    return entry.name, yaml.safe_dump(spec, sort_keys=False)


@fuzz(800)
@given(generated_spec())
def test_generated_specs_check_or_fail_located(case) -> None:
    name, text = case
    run_case(
        "generated from schema",
        name,
        [
            ("load", lambda _: load_spec(text, limits=LIMITS)),
            ("compile", lambda spec: compile_spec(spec, spec_locator(spec), LIMITS)),
            ("check", lambda prog: abstract_check(prog, spec_locator(prog.spec), **BUDGET)),
        ],
    )
