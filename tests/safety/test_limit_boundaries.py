"""Every size bound at its exact edge: at the bound passes, one past it is refused with ONE code.

The bounds are the documented ones (docs/guarantees.md, section 3): dimensions from 0 to
2^62, ``repeat`` from 0 to 100,000 (``scan: true`` exempts a repeat from ``max_modules``,
not from that bound), and the budgets ``max_params`` / ``max_bytes``, where a Linear(4, 3)
holds 4 * 3 + 3 = 15 float32 parameters (60 bytes) and its example input x[1, 4] 16 bytes.

A spec accepted at 2^62 still cannot be built: it is then refused by the byte or parameter
budget, so the code says which check let it through. Each case fails if a bound is moved by
one (``>`` for ``>=``, ``<=`` for ``<``) in the code.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import nnx_build
from nnx_build import SpecErrors
from nnx_build.cli import main

MAX_DIM = 2**62
MAX_REPEAT = 100_000
HEAD = "format: 1\nname: m\n"
LINEAR = HEAD + "inputs: {x: [batch, 4]}\nlayers:\n  - l: {type: Linear, in_features: 4, out_features: 3}\n"
PARAMS, BYTES = 4 * 3 + 3, (4 * 3 + 3) * 4 + 1 * 4 * 4


def outcome(text: str, **budgets: int) -> str:
    """``"ok"`` or the one error code ``check`` refuses the spec with."""
    try:
        nnx_build.check(text, **budgets)
    except SpecErrors as e:
        assert len(e.codes) == 1, e.codes
        return e.codes[0]
    return "ok"


def input_dim(d: int) -> str:
    return HEAD + f"inputs: {{x: [{d}]}}\nlayers: [relu]\n"


def example_dim(d: int) -> str:
    return HEAD + f"dims: {{n: {d}}}\ninputs: {{x: [n]}}\nlayers: [relu]\n"


def variable_dim(d: int) -> str:
    return HEAD + f"inputs: {{x: [batch, 4]}}\nvariables:\n  w: {{shape: [{d}]}}\nlayers: [relu]\n"


@pytest.mark.parametrize(
    ("spec", "at_the_bound"),
    [(input_dim, "too-many-bytes"), (example_dim, "too-many-bytes"), (variable_dim, "too-many-params")],
    ids=["input", "dims-example", "variable"],
)
def test_dimensions_up_to_2_to_the_62(spec, at_the_bound) -> None:
    assert outcome(spec(MAX_DIM)) == at_the_bound  # a valid size: the shape check lets it through to the budget
    assert outcome(spec(MAX_DIM + 1)) == "bad-shape"
    assert outcome(spec(0)) == "ok"
    assert outcome(spec(-1)) == "bad-shape"


def stack(repeat: int, scan: bool) -> str:
    return (
        HEAD + "inputs: {x: [batch, 2]}\nblocks:\n  B:\n    layers:\n"
        "      - l: {type: Linear, in_features: 2, out_features: 2}\n"
        f"layers:\n  - b: {{type: B, repeat: {repeat}{', scan: true' if scan else ''}}}\n"
    )


def test_repeat_up_to_100000_and_scan_is_exempt_from_the_module_count_only() -> None:
    assert nnx_build.check(stack(MAX_REPEAT, scan=True)).total_params == MAX_REPEAT * (2 * 2 + 2)
    assert outcome(stack(MAX_REPEAT + 1, scan=True)) == "bad-value"
    # unscanned, 100,000 is a valid repeat, refused by the module count (2 per copy, over 10,000)
    assert outcome(stack(MAX_REPEAT, scan=False)) == "too-many-modules"
    assert outcome(stack(MAX_REPEAT + 1, scan=False)) == "bad-value"
    assert outcome(stack(0, scan=False)) == "ok"
    assert outcome(stack(-1, scan=False)) == "bad-value"


def test_parameter_budget_exactly() -> None:
    assert outcome(LINEAR, max_params=PARAMS) == "ok"
    assert outcome(LINEAR, max_params=PARAMS - 1) == "too-many-params"
    assert outcome(LINEAR + f"max_params: {PARAMS}\n") == "ok"
    assert outcome(LINEAR + f"max_params: {PARAMS - 1}\n") == "too-many-params"


def test_byte_budget_exactly() -> None:
    assert outcome(LINEAR, max_bytes=BYTES) == "ok"
    assert outcome(LINEAR, max_bytes=BYTES - 1) == "too-many-bytes"
    assert outcome(LINEAR + f"max_bytes: {BYTES}\n") == "ok"
    assert outcome(LINEAR + f"max_bytes: {BYTES - 1}\n") == "too-many-bytes"


def test_the_command_line_at_the_budgets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "m.yaml"
    spec.write_text(LINEAR, encoding="utf-8")
    assert main(["check", str(spec), "--max-params", str(PARAMS), "--max-bytes", str(BYTES)]) == 0
    capsys.readouterr()
    assert main(["check", str(spec), "--max-params", str(PARAMS), "--max-bytes", str(BYTES - 1)]) == 2
    err = capsys.readouterr().err
    assert f"{spec}:1:1: error[too-many-bytes]: model needs" in err and "Traceback" not in err
    assert main(["check", str(spec), "--max-params", str(PARAMS - 1)]) == 2
    assert "error[too-many-params]" in capsys.readouterr().err
