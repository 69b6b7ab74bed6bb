"""The generated spec reference tells what the language does: dtypes, lora, shorthand, unnamed steps."""

from __future__ import annotations

import typing

import nnx_build
from nnx_build.builder import compile as compile_spec
from nnx_build.docgen import reference_markdown
from nnx_build.schemas.common import DTypeName


def _section(text: str, title: str) -> str:
    start = text.index(f"\n### {title}\n")
    return text[start : text.index("\n### ", start + 1)]


def test_every_dtype_is_listed_and_accepted() -> None:
    dtypes = _section(reference_markdown(), "Dtypes")
    for name in typing.get_args(DTypeName):
        assert f"`{name}`" in dtypes
        nnx_build.load_spec(f"format: 1\nname: m\ninputs: {{x: {{shape: [2], dtype: {name}}}}}\nlayers: [identity]\n")


def test_step_table_has_the_lora_field() -> None:
    step = _section(reference_markdown(), "Step")
    assert "| `lora` | LoRAOption" in step
    assert "| `rank` | int | **required**" in _section(reference_markdown(), "LoRAOption")


def test_input_list_shorthand_is_documented_and_means_the_mapping() -> None:
    assert "``x: [batch, 2]`` is short for ``x: {shape: [batch, 2]}``" in _section(reference_markdown(), "InputSpec")
    short = nnx_build.load_spec("format: 1\nname: m\ninputs: {x: [batch, 2]}\nlayers: [relu]\n")
    long = nnx_build.load_spec("format: 1\nname: m\ninputs: {x: {shape: [batch, 2], dtype: float32}}\nlayers: [relu]\n")
    assert short == long


def test_unnamed_steps_are_named_as_documented() -> None:
    step = " ".join(_section(reference_markdown(), "Step").split())
    assert "the ``relu`` output is ``_relu_1``" in step
    program = compile_spec(
        "format: 1\nname: m\ninputs: {x: [batch, 2]}\n"
        "layers:\n  - fc: {type: Linear, in_features: 2, out_features: 2}\n  - relu\n"
        "methods:\n  act:\n    layers: [tanh, {type: relu, in: fc}]\n    outputs: [_tanh_2, _relu_3]\n"
    )
    assert [n.outs for n in program.root.main.nodes] == [("fc",), ("_relu_1",)]
    act = dict(program.root.methods)["act"]
    assert act.outputs == ("_tanh_2", "_relu_3")
