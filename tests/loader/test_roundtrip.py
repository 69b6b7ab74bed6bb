"""``load_spec(dump_spec(s)) == s``, shorthand forms, and the safe expression evaluator."""

from __future__ import annotations

from pathlib import Path

import pytest

import nnx_build
from nnx_build import dump_spec, load_spec
from nnx_build.expr import ExprError, evaluate, has_expr, substitute

SPECS = Path(__file__).resolve().parents[2] / "specs"
SPEC_FILES = sorted(p for ext in ("yaml", "yml", "json") for p in SPECS.rglob(f"*.{ext}"))


def test_there_are_specs_to_round_trip():
    assert len(SPEC_FILES) >= 3


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: str(p.relative_to(SPECS)))
def test_dump_then_load_is_identity(path):
    spec = load_spec(path)
    text = dump_spec(spec)
    again = load_spec(text)
    assert again == spec
    assert dump_spec(again) == text  # the normal form is a fixed point


def test_round_trip_keeps_every_part_of_the_language():
    text = """
format: 1
name: everything
doc: a spec touching each part of the language
seed: 3
args: {d: 4, scale: 0.5, tag: "h"}
dims: {batch: 2}
kinds: {Frozen: {base: Param, doc: not trained}}
inputs:
  x: {shape: [batch, "${d}"], dtype: float32}
variables:
  w: {kind: Frozen, shape: ["${d}"], init: {type: normal, stddev: 0.02}}
blocks:
  Dense:
    args:
      dim: int
      act: {type: str, default: relu}
    layers:
      - lin: {type: Linear, in_features: "${dim}", out_features: "${dim}", kernel_init: {type: normal, stddev: 1.0e-5}}
      - {type: leaky_relu, negative_slope: "${scale / 10}"}
layers:
  - d1: {type: Dense, dim: "${d}"}
  - h: relu
  - s: {type: add, in: [h, w], as: y}
  - stack: {type: Dense, dim: 4, repeat: 2, scan: true, in: y}
outputs: [stack]
methods:
  first:
    outputs: [d1]
max_params: 100000
"""
    spec = load_spec(text)
    assert load_spec(dump_spec(spec)) == spec
    nnx_build.compile(load_spec(dump_spec(spec)))  # the dump is still a valid program


def test_equality_ignores_source_positions(tmp_path):
    text = "format: 1\nname: t\ninputs: {x: [batch, 2]}\nlayers:\n  - relu\n"
    path = tmp_path / "t.yaml"
    path.write_text("# leading comment\n\n" + text)
    assert load_spec(path) == load_spec(text)


def test_different_specs_are_not_equal():
    a = load_spec("format: 1\nname: t\ninputs: {x: [batch, 2]}\nlayers:\n  - relu\n")
    b = load_spec("format: 1\nname: t\ninputs: {x: [batch, 2]}\nlayers:\n  - tanh\n")
    assert a != b


# ---- shorthands ----------------------------------------------------------------------------

BASE = "format: 1\nname: t\ninputs: {x: [batch, 2]}\nlayers:\n"


def test_bare_op_shorthand():
    (step,) = load_spec(BASE + "  - relu\n").layers
    assert (step.name, step.type, step.in_, step.fields) == (None, "relu", None, {})
    assert step == load_spec(BASE + "  - {type: relu}\n").layers[0]


def test_named_op_shorthand():
    (step,) = load_spec(BASE + "  - h: relu\n").layers
    assert (step.name, step.type) == ("h", "relu")
    assert step == load_spec(BASE + "  - {name: h, type: relu}\n").layers[0]


def test_named_layer_shorthand_keeps_layer_fields():
    (step,) = load_spec(BASE + "  - lin: {type: Linear, in_features: 2, out_features: 3, in: x}\n").layers
    assert (step.name, step.type, step.in_) == ("lin", "Linear", "x")
    assert step.fields == {"in_features": 2, "out_features": 3}
    long = load_spec(BASE + "  - {name: lin, type: Linear, in_features: 2, out_features: 3, in: x}\n").layers[0]
    assert step == long


def test_input_shorthand():
    spec = load_spec("format: 1\nname: t\ninputs:\n  x: [batch, 2]\n  ids: {shape: [batch, 7], dtype: int32}\nlayers:\n  - relu\n")
    assert spec.inputs["x"].shape == ["batch", 2]
    assert spec.inputs["x"].dtype == "float32"
    assert spec.inputs["ids"].dtype == "int32"
    long = load_spec("format: 1\nname: t\ninputs:\n  x: {shape: [batch, 2]}\n  ids: {shape: [batch, 7], dtype: int32}\nlayers:\n  - relu\n")
    assert spec == long


def test_block_arg_shorthand():
    spec = load_spec(
        BASE + "  - b: {type: B, dim: 2}\nblocks:\n  B:\n    args: {dim: int, act: {type: str, default: relu}}\n    layers: [relu]\n"
    )
    args = spec.blocks["B"].args
    assert (args["dim"].type, args["dim"].required) == ("int", True)
    assert (args["act"].type, args["act"].required, args["act"].default) == ("str", False, "relu")


def test_shorthands_dump_to_the_long_form():
    spec = load_spec(BASE + "  - relu\n  - h: tanh\n")
    data = __import__("yaml").safe_load(dump_spec(spec))
    assert data["layers"] == [{"type": "relu"}, {"name": "h", "type": "tanh"}]
    assert data["inputs"] == {"x": {"shape": ["batch", 2]}}
    assert data["format"] == 1


def test_load_spec_accepts_a_spec():
    spec = load_spec(BASE + "  - relu\n")
    assert load_spec(spec) is spec


def test_load_spec_from_json_text_and_file(tmp_path):
    text = '{"format": 1, "name": "t", "inputs": {"x": ["batch", 2]}, "layers": ["relu"]}'
    path = tmp_path / "t.json"
    path.write_text(text)
    assert load_spec(path) == load_spec(text) == load_spec(BASE + "  - relu\n")


# ---- expressions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${1 + 2 * 3}", 7),
        ("${(1 + 2) * 3}", 9),
        ("${7 // 2}", 3),
        ("${7 % 4}", 3),
        ("${7 / 2}", 3.5),
        ("${2 ** 10}", 1024),
        ("${-d}", -8),
        ("${d * 4}", 32),
        ("${d // heads}", 4),
        ("${max(d, 3) + min(1, 2)}", 9),
        ("${abs(-3) + int(2.9) + round(1.4)}", 6),
        ("${float(d)}", 8.0),
        ("${d if d > 4 else 0}", 8),
        ("${1 < d <= 8}", True),
        ("${d == 8 and heads != 0}", True),
        ("${not 0}", True),
        ("  ${d}  ", 8),
        ("h${i}", "h2"),
        ("${d}x${heads}", "8x2"),
        ("no expression", "no expression"),
    ],
)
def test_expression_values(text, expected):
    out = evaluate(text, {"d": 8, "heads": 2, "i": 2})
    assert out == expected
    assert type(out) is type(expected)


def test_substitute_walks_lists_and_dicts():
    value = {"a": ["${n}", "${n + 1}", 3], "b": {"c": "L${n}"}, "d": None}
    assert substitute(value, {"n": 1}) == {"a": [1, 2, 3], "b": {"c": "L1"}, "d": None}
    assert has_expr("${n}") and not has_expr("n") and not has_expr(3)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("${d_model * }", "invalid expression"),
        ("${dmodel}", "did you mean 'd_model'?"),
        ("${d_model.__class__}", "Attribute"),
        ("${().__class__.__bases__[0].__subclasses__()}", "only the functions"),
        ("${__import__('os').system('true')}", "only the functions"),
        ("${__import__('os')}", "only the functions"),
        ("${eval('1')}", "only the functions"),
        ("${open('/etc/passwd')}", "only the functions"),
        ("${max(d_model, key=abs)}", "only the functions"),
        ("${[1, 2]}", "List"),
        ("${{1: 2}}", "unclosed"),
        ("${lambda: 1}", "Lambda"),
        ("${d_model[0]}", "Subscript"),
        ("${(x := 1)}", "NamedExpr"),
        ("${2 ** 1000}", "too large"),
        ("${9 ** 9 ** 9}", "too large"),
        ("${10 ** 20 * 10 ** 20}", "too large"),
        ("${1.0e29 ** 128}", "too large"),
        ("${int(1.0e308 * 10)}", "not finite"),
        ("${(-8) ** 0.5}", "not a real number"),
        ("${1 / 0}", "division by zero"),
        ("${1 % 0}", "division by zero"),
        ("${'a' * 3}", "expected a number"),
        ("${None}", "not allowed"),
        ("${", "unclosed"),
        ("${" + "1 + " * 200 + "1}", "longer than"),
    ],
)
def test_expression_refusals(text, fragment):
    with pytest.raises(ExprError) as info:
        evaluate(text, {"d_model": 8})
    assert fragment in str(info.value)


def test_expression_never_calls_python(tmp_path, monkeypatch):
    import builtins

    def boom(*a, **k):
        raise AssertionError("eval/exec called")

    monkeypatch.setattr(builtins, "eval", boom)
    monkeypatch.setattr(builtins, "exec", boom)
    assert evaluate("${d * 2}", {"d": 3}) == 6
