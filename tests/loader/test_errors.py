"""Bad specs: every problem is a located ``SpecError`` with a stable code.

Each test writes a small spec to a file (so the file name shows up in ``loc.file``),
and computes the expected line and column from the spec text itself.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import nnx_build
from nnx_build import SpecError, SpecErrors

HEAD = "format: 1\nname: m\ninputs:\n  x: [batch, 4]\nlayers:\n"


def write(tmp_path: Path, text: str | bytes, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def errors_of(path: Path, fn=nnx_build.check) -> list[SpecError]:
    with pytest.raises(SpecErrors) as info:
        fn(path)
    errors = info.value.errors
    assert errors, "SpecErrors without errors"
    for e in errors:
        assert isinstance(e, SpecError)
        assert e.loc.file == str(path)
        assert str(e).startswith(f"{path}:{e.loc.line}:{e.loc.col}: error[{e.code}]: ")
    return errors


def only(errors: list[SpecError], code: str) -> SpecError:
    assert [e.code for e in errors] == [code], [str(e) for e in errors]
    return errors[0]


def pos(text: str, needle: str, nth: int = 1) -> tuple[int, int]:
    """1-based (line, col) of the ``nth`` occurrence of ``needle`` in ``text``."""
    at = -1
    for _ in range(nth):
        at = text.index(needle, at + 1)
    line = text.count("\n", 0, at) + 1
    col = at - (text.rfind("\n", 0, at) + 1) + 1
    return line, col


def at(e: SpecError) -> tuple[int, int]:
    return e.loc.line, e.loc.col


# ---- the loader: YAML itself ------------------------------------------------------------


def test_yaml_syntax_error(tmp_path):
    text = "format: 1\nname: m: x\ninputs: {x: [batch, 4]}\nlayers: [relu]\n"
    e = only(errors_of(write(tmp_path, text), nnx_build.load_spec), "syntax")
    line, col = pos(text, ": x")  # the second ':' on the `name` line
    assert at(e) == (line, col)
    assert "invalid YAML" in e.message


def test_duplicate_key(tmp_path):
    text = HEAD + "  - relu\nname: other\n"
    e = only(errors_of(write(tmp_path, text), nnx_build.load_spec), "duplicate-key")
    assert at(e) == pos(text, "name: other")
    assert "'name'" in e.message and f"line {pos(text, 'name: m')[0]}" in e.message


def test_python_tag_is_refused_and_never_executed(tmp_path):
    sentinel = tmp_path / "pwned"
    text = f'format: 1\nname: !!python/object/apply:os.system ["touch {sentinel}"]\ninputs: {{x: [batch, 4]}}\nlayers: [relu]\n'
    e = only(errors_of(write(tmp_path, text), nnx_build.load_spec), "yaml-tag")
    assert at(e) == pos(text, "!!python")
    assert "python/object/apply:os.system" in e.message
    assert not sentinel.exists()


@pytest.mark.parametrize("tag", ["!!python/name:os.system", "!!binary aGVsbG8=", "!!timestamp 2024-01-01", "!custom 3"])
def test_other_tags_are_refused(tmp_path, tag):
    text = f"format: 1\nname: m\ninputs: {{x: [batch, 4]}}\nlayers: [relu]\ndoc: {tag}\n"
    e = only(errors_of(write(tmp_path, text), nnx_build.load_spec), "yaml-tag")
    assert at(e) == pos(text, tag)


def test_merge_key_is_refused(tmp_path):
    text = "base: &b {format: 1}\n<<: *b\nname: m\n"
    e = only(errors_of(write(tmp_path, text), nnx_build.load_spec), "yaml-tag")
    assert at(e) == pos(text, "<<")


def test_alias_bomb_is_refused_quickly(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    text = "\n".join(lines) + "\n"  # 9**9 (387 million) strings once expanded
    path = write(tmp_path, text)
    start = time.perf_counter()
    e = only(errors_of(path, nnx_build.load_spec), "too-many-nodes")
    assert time.perf_counter() - start < 5
    assert 1 <= e.loc.line <= len(lines)
    assert "alias bomb" in e.message


def test_too_deep_nesting(tmp_path):
    prefix = "  a: "
    text = f"format: 1\nname: m\nargs:\n{prefix}{'[' * 100}{']' * 100}\ninputs: {{x: [batch, 4]}}\nlayers: [relu]\n"
    e = only(errors_of(write(tmp_path, text), nnx_build.load_spec), "too-deep")
    # root mapping: depth 0, `args` mapping: 1, the first '[': 2; depth 65 is the first refused
    line, col = pos(text, "[")
    assert at(e) == (line, col + 65 - 2)
    assert "64" in e.message


def test_nesting_deeper_than_python_recursion(tmp_path):
    text = "format: 1\na: " + "[" * 5000 + "]" * 5000 + "\n"
    e = only(errors_of(write(tmp_path, text), nnx_build.load_spec), "too-deep")
    assert e.loc.file == str(tmp_path / "spec.yaml")


def test_non_utf8_bytes(tmp_path):
    raw = b"format: 1\nname: m\ninputs: {x: [batch, 4]}\nlayers:\n  - re\xfflu\n"
    e = only(errors_of(write(tmp_path, raw), nnx_build.load_spec), "encoding")
    at_byte = raw.index(b"\xff")
    assert at(e) == (raw.count(b"\n", 0, at_byte) + 1, at_byte - raw.rfind(b"\n", 0, at_byte))
    assert "0xff" in e.message


def test_integer_too_long_for_python(tmp_path):
    text = "format: 1\nname: m\nargs: {big: " + "1" * 5000 + "}\ninputs: {x: [batch, 4]}\nlayers: [relu]\n"
    e = only(errors_of(write(tmp_path, text), nnx_build.load_spec), "too-large")
    assert at(e) == pos(text, "1111")


def test_empty_spec(tmp_path):
    e = only(errors_of(write(tmp_path, "# nothing here\n"), nnx_build.load_spec), "empty")
    assert "format" in e.message


# ---- the schema ---------------------------------------------------------------------------


def test_unknown_top_level_field(tmp_path):
    text = HEAD + "  - relu\noutptus: [x]\n"
    e = only(errors_of(write(tmp_path, text)), "unknown-field")
    assert at(e) == pos(text, "outptus")
    assert "'outptus'" in e.message and "did you mean 'outputs'?" in e.message


def test_missing_required_field(tmp_path):
    text = "# a spec without inputs\nformat: 1\nname: m\nlayers:\n  - relu\n"
    e = only(errors_of(write(tmp_path, text)), "missing-field")
    assert at(e) == pos(text, "format")  # the spec's own mapping
    assert "'inputs'" in e.message


def test_wrong_type_on_a_layer_field(tmp_path):
    text = HEAD + '  - lin:\n      type: Linear\n      in_features: "abc"\n      out_features: 2\n'
    e = only(errors_of(write(tmp_path, text)), "wrong-type")
    assert at(e) == pos(text, "in_features")
    assert "in_features" in e.message and "an integer" in e.message and "'abc'" in e.message


def test_wrong_type_at_the_top_level(tmp_path):
    text = "format: 1\nname: m\nseed: many\ninputs: {x: [batch, 4]}\nlayers: [relu]\n"
    e = only(errors_of(write(tmp_path, text)), "wrong-type")
    assert at(e) == pos(text, "seed")
    assert "'many'" in e.message


def test_unsupported_future_format(tmp_path):
    text = "# from the future\nname: m\nformat: 2\ninputs: {x: [batch, 4]}\nlayers: [relu]\n"
    e = only(errors_of(write(tmp_path, text)), "unsupported-format")
    assert at(e) == pos(text, "format")
    assert "2" in e.message and "format 1" in e.message and "upgrade" in e.message


# ---- the program: names, references, blocks, expressions, kinds -----------------------------


def test_unknown_layer_type(tmp_path):
    text = HEAD + "  - lin: {type: Lienar, in_features: 4, out_features: 2}\n"
    e = only(errors_of(write(tmp_path, text)), "unknown-type")
    assert at(e) == pos(text, "type: Lienar")
    assert "'Lienar'" in e.message and "did you mean 'Linear'?" in e.message


def test_unknown_field_on_a_layer(tmp_path):
    text = HEAD + "  - lin:\n      type: Linear\n      in_features: 4\n      out_feature: 2\n"
    errors = errors_of(write(tmp_path, text))
    assert sorted(e.code for e in errors) == ["missing-field", "unknown-field"]
    unknown = next(e for e in errors if e.code == "unknown-field")
    assert at(unknown) == pos(text, "out_feature")
    assert "did you mean 'out_features'?" in unknown.message
    missing = next(e for e in errors if e.code == "missing-field")
    assert at(missing) == pos(text, "lin:")
    assert "'out_features'" in missing.message


def test_unknown_reference_in_in(tmp_path):
    text = HEAD + "  - h: {type: relu}\n  - s: {type: add, in: [h, xh]}\n"
    e = only(errors_of(write(tmp_path, text)), "unknown-ref")
    assert at(e) == pos(text, "xh")
    assert "'xh'" in e.message and "did you mean" in e.message


def test_unknown_output(tmp_path):
    text = HEAD + "  - hidden: {type: relu}\noutputs: [hiden]\n"
    e = only(errors_of(write(tmp_path, text)), "unknown-ref")
    assert at(e) == pos(text, "hiden]")
    assert "did you mean 'hidden'?" in e.message


def test_duplicate_step_names(tmp_path):
    text = HEAD + "  - a: {type: relu}\n  - a: {type: tanh}\n"
    e = only(errors_of(write(tmp_path, text)), "duplicate-name")  # and no spurious cycle
    assert at(e) == pos(text, "a: {type: tanh}")
    assert "'a'" in e.message and f"line {pos(text, 'a: {type: relu}')[0]}" in e.message


def test_cycle_through_in_references(tmp_path):
    text = HEAD + "  - a: {type: add, in: [x, b]}\n  - b: {type: relu, in: a}\noutputs: [b]\n"
    e = only(errors_of(write(tmp_path, text)), "cycle")
    assert at(e) == pos(text, "a: {type: add")
    assert "a -> b -> a" in e.message


def test_self_reference_is_a_cycle(tmp_path):
    text = HEAD + "  - a: {type: relu, in: a}\n"
    e = only(errors_of(write(tmp_path, text)), "cycle")
    assert at(e) == pos(text, "a: {type")


BLOCK = """format: 1
name: m
inputs: {x: [batch, 4]}
blocks:
  Dense:
    args: {dim: int, hidden: int}
    layers:
      - up: {type: Linear, in_features: "${dim}", out_features: "${hidden}"}
      - relu
      - down: {type: Linear, in_features: "${hidden}", out_features: "${dim}"}
layers:
"""


def test_unknown_block_argument(tmp_path):
    text = BLOCK + "  - d1: {type: Dense, dim: 4, hiden: 8}\n"
    errors = errors_of(write(tmp_path, text))
    assert sorted(e.code for e in errors) == ["missing-field", "unknown-field"]
    unknown = next(e for e in errors if e.code == "unknown-field")
    assert at(unknown) == pos(text, "hiden")
    assert "'hiden'" in unknown.message and "did you mean 'hidden'?" in unknown.message


def test_missing_block_argument(tmp_path):
    text = BLOCK + "  - d1: {type: Dense, dim: 4}\n"
    e = only(errors_of(write(tmp_path, text)), "missing-field")
    assert at(e) == pos(text, "d1:")
    assert "'hidden'" in e.message and "int" in e.message


def test_wrong_type_block_argument(tmp_path):
    text = BLOCK + "  - d1: {type: Dense, dim: 4, hidden: eight}\n"
    e = only(errors_of(write(tmp_path, text)), "wrong-type")
    assert at(e) == pos(text, "hidden: eight")
    assert "int" in e.message and "'eight'" in e.message


def test_bad_expression_syntax(tmp_path):
    text = "format: 1\nname: m\nargs: {d_model: 4}\ninputs: {x: [batch, 4]}\nlayers:\n" \
           "  - lin: {type: Linear, in_features: 4, out_features: '${d_model * }'}\n"
    e = only(errors_of(write(tmp_path, text)), "bad-expression")
    assert at(e) == pos(text, "out_features")
    assert "d_model *" in e.message


def test_unknown_name_in_expression(tmp_path):
    text = "format: 1\nname: m\nargs: {d_model: 4}\ninputs: {x: [batch, 4]}\nlayers:\n" \
           "  - lin: {type: Linear, in_features: '${d_modle}', out_features: 2}\n"
    e = only(errors_of(write(tmp_path, text)), "bad-expression")
    assert at(e) == pos(text, "in_features")
    assert "'d_modle'" in e.message and "did you mean 'd_model'?" in e.message


def test_unsafe_expression(tmp_path):
    text = HEAD + "  - lin: {type: Linear, in_features: 4, out_features: \"${__import__('os').getpid()}\"}\n"
    e = only(errors_of(write(tmp_path, text)), "bad-expression")
    assert at(e) == pos(text, "out_features")


def test_unknown_kind(tmp_path):
    text = "format: 1\nname: m\nkinds: {Frozen: {base: Param}}\ninputs: {x: [batch, 4]}\n" \
           "variables:\n  w: {kind: Frozn, shape: [4]}\nlayers:\n  - relu\n"
    e = only(errors_of(write(tmp_path, text)), "unknown-kind")
    assert at(e) == pos(text, "kind: Frozn")
    assert "'Frozn'" in e.message and "did you mean 'Frozen'?" in e.message
    assert "Frozn: {base: Param}" in e.message


def test_unknown_base_kind(tmp_path):
    text = "format: 1\nname: m\nkinds:\n  Frozen: {base: Parm}\ninputs: {x: [batch, 4]}\nlayers:\n  - relu\n"
    e = only(errors_of(write(tmp_path, text)), "unknown-kind")
    assert at(e) == pos(text, "base: Parm")
    assert "did you mean 'Param'?" in e.message


def test_unknown_kind_on_a_step(tmp_path):
    text = HEAD + "  - lin: {type: Linear, in_features: 4, out_features: 2, kinds: {kernel: Frozen}}\n"
    e = only(errors_of(write(tmp_path, text)), "unknown-kind")
    assert at(e) == pos(text, "kernel: Frozen")


def test_layer_without_a_name(tmp_path):
    text = HEAD + "  - {type: Linear, in_features: 4, out_features: 2}\n"
    e = only(errors_of(write(tmp_path, text)), "missing-name")
    assert at(e) == pos(text, "{type: Linear")
    assert "Linear" in e.message


# ---- the abstract build: shapes and budgets ------------------------------------------------


def test_shape_mismatch(tmp_path):
    text = HEAD + "  - l1: {type: Linear, in_features: 4, out_features: 8}\n" \
                  "  - l2: {type: Linear, in_features: 5, out_features: 2}\n"
    e = only(errors_of(write(tmp_path, text)), "shape-mismatch")
    assert at(e) == pos(text, "l2:")
    assert "'l2'" in e.message and "in_features" in e.message and "8" in e.message


def test_shape_mismatch_is_also_raised_by_build(tmp_path):
    text = HEAD + "  - l1: {type: Linear, in_features: 3, out_features: 8}\n"
    e = only(errors_of(write(tmp_path, text), nnx_build.build), "shape-mismatch")
    assert at(e) == pos(text, "l1:")


def test_too_many_params(tmp_path):
    text = "format: 1\nname: m\nmax_params: 100\ninputs: {x: [batch, 4]}\nlayers:\n" \
           "  - l1: {type: Linear, in_features: 4, out_features: 80}\n"
    e = only(errors_of(write(tmp_path, text)), "too-many-params")
    # 4 * 80 kernel + 80 bias
    assert "400" in e.message and "100" in e.message
    assert at(e) in (pos(text, "format"), pos(text, "max_params"))


# ---- JSON --------------------------------------------------------------------------------


def test_json_spec_error_is_located(tmp_path):
    text = """{
  "format": 1,
  "name": "m",
  "inputs": {"x": ["batch", 4]},
  "layers": [
    {"lin": {"type": "Lienar", "in_features": 4, "out_features": 2}}
  ]
}
"""
    e = only(errors_of(write(tmp_path, text, "spec.json")), "unknown-type")
    assert at(e) == pos(text, '"type"')
    assert "did you mean 'Linear'?" in e.message


def test_json_syntax_error(tmp_path):
    text = '{\n  "format": 1,\n  "name": "m",\n}\n'
    e = only(errors_of(write(tmp_path, text, "spec.json"), nnx_build.load_spec), "syntax")
    assert at(e) == pos(text, "}")
    assert "JSON" in e.message


def test_json_duplicate_key(tmp_path):
    text = '{\n  "format": 1,\n  "name": "m",\n  "format": 1\n}\n'
    e = only(errors_of(write(tmp_path, text, "spec.json"), nnx_build.load_spec), "duplicate-key")
    assert at(e) == pos(text, '"format"', nth=2)


# ---- all problems in one run ---------------------------------------------------------------


def test_three_mistakes_in_one_run(tmp_path):
    text = HEAD + (
        "  - l1: {type: Lineer, in_features: 4, out_features: 8}\n"
        "  - h: {type: relu, in: xx}\n"
        "  - l2: {type: Linear, in_features: four, out_features: 2, in: h}\n"
    )
    errors = errors_of(write(tmp_path, text))
    assert [e.code for e in errors] == ["unknown-type", "unknown-ref", "wrong-type"]
    assert [at(e) for e in errors] == [pos(text, "type: Lineer"), pos(text, "in: xx"), pos(text, "in_features: four")]
    assert len({e.loc.line for e in errors}) == 3
    assert "did you mean 'Linear'?" in errors[0].message


def test_errors_in_several_places_are_all_reported(tmp_path):
    text = BLOCK + (
        "  - d1: {type: Dense, dim: 4, hidden: 8, extra: 1}\n"
        "  - d2: {type: Dense, dim: 4}\n"
        "  - out: {type: Lenear, in_features: 4, out_features: 2}\n"
        "outputs: [oot]\n"
    )
    errors = errors_of(write(tmp_path, text))
    assert [e.code for e in errors] == ["unknown-field", "missing-field", "unknown-type", "unknown-ref"]
    assert [e.loc.line for e in errors] == [
        pos(text, "extra")[0], pos(text, "d2:")[0], pos(text, "Lenear")[0], pos(text, "oot")[0],
    ]


# ---- messages: unions, choices, no echoes ----------------------------------------------------


def test_union_field_gives_one_error(tmp_path):
    text = HEAD + "  - l: {type: Linear, in_features: 4, out_features: 4, in: 3}\n"
    e = only(errors_of(write(tmp_path, text)), "wrong-type")
    assert at(e) == pos(text, "in: 3")
    assert "field 'in'" in e.message and "a string" in e.message and "a list" in e.message and "received 3" in e.message


def test_choice_field_suggests_the_closest_value(tmp_path):
    text = "format: 1\nname: m\ninputs:\n  x: {shape: [batch, 4], dtype: float23}\nlayers: [relu]\n"
    e = only(errors_of(write(tmp_path, text)), "bad-value")
    assert at(e) == pos(text, "dtype")
    assert "'float23'" in e.message and "did you mean 'float32'?" in e.message


def test_block_arg_spec_suggests_type(tmp_path):
    text = "format: 1\nname: m\ninputs: {x: [batch, 4]}\nblocks:\n  B:\n    args: {d: {typ: int}}\n    layers: [relu]\nlayers: [relu]\n"
    e = only(errors_of(write(tmp_path, text)), "unknown-field")
    assert at(e) == pos(text, "typ:")
    assert "did you mean 'type'?" in e.message


def test_failed_expression_in_an_input_shape_is_reported_once(tmp_path):
    text = "format: 1\nname: m\nargs: {d: 4}\ninputs:\n  x: [batch, '${dd}']\nlayers: [relu]\n"
    e = only(errors_of(write(tmp_path, text)), "bad-expression")
    assert e.loc.line == pos(text, "${dd}")[0]
    assert "did you mean 'd'?" in e.message


def test_model_without_inputs(tmp_path):
    text = "format: 1\nname: m\ninputs: {}\nlayers: [relu]\n"
    e = only(errors_of(write(tmp_path, text)), "missing-input")
    assert "no inputs" in e.message


def test_schema_errors_and_step_errors_in_one_run(tmp_path) -> None:
    text = (
        "format: 1\n"
        "name: bad\n"
        "layr: []\n"
        "inputs:\n"
        "  x: {shape: [batch, 2]}\n"
        "layers:\n"
        "  - linear: {type: Lienar, in_features: 2, out_features: 64}\n"
        "  - out: {type: Linear, in_features: 64, out_features: 3, repeat: [1]}\n"
        "  - out2: {type: Linear, in_features: 3, out_features: 3, in: outt}\n"
    )
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecErrors) as info:
        nnx_build.load_spec(path)
    got = {(e.code, e.loc.line) for e in info.value.errors}
    assert got == {
        ("unknown-field", 3),
        ("unknown-type", 7),
        ("wrong-type", 8),
        ("unknown-ref", 9),
    }


def test_strings_are_not_coerced_to_numbers(tmp_path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(
        "format: 1\nname: m\ninputs: {x: [batch, 4]}\nlayers:\n"
        "  - l1: {type: Linear, in_features: '4', out_features: 2}\n"
    )
    with pytest.raises(SpecErrors) as info:
        nnx_build.check(path)
    assert [(e.code, e.loc.line) for e in info.value.errors] == [("wrong-type", 5)]


def test_budget_error_points_at_max_params(tmp_path) -> None:
    text = "format: 1\nname: m\nmax_params: 100\ninputs: {x: [batch, 4]}\nlayers:\n  - l1: {type: Linear, in_features: 4, out_features: 80}\n"
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecErrors) as info:
        nnx_build.check(path)
    err = info.value.errors[0]
    assert (err.code, err.loc.line, err.loc.col) == ("too-many-params", 3, 1)
