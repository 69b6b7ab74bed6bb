"""Declared sizes (builder/shapes.py), each rule and message word for word.

Called directly with a recorder for the errors: the message, the code and the path of
each report, and what the function returns (the shape, or None once reported). The
bounds are the documented ones (docs/guarantees.md: dimensions at most 2^62; a symbolic
dim's example size is its ``dims:`` entry, default 1).
"""

from __future__ import annotations

from typing import Any

from nnx_build.builder.shapes import checked_input_shape, checked_variable_shape, example_dims
from nnx_build.schemas.spec import InputSpec

MAX_DIM = 2**62


class Errors(list[tuple[str, str, tuple[Any, ...]]]):
    def __call__(self, code: str, message: str, path: tuple[Any, ...]) -> None:
        self.append((code, message, path))


def test_input_shapes() -> None:
    err = Errors()
    assert checked_input_shape("x", None, ("inputs", "x"), err) is None
    assert checked_input_shape("x", ["batch", 0, MAX_DIM], ("inputs", "x"), err) == ["batch", 0, MAX_DIM]
    assert err == []
    for bad in (MAX_DIM + 1, True, 2.0, None):
        err = Errors()
        assert checked_input_shape("x", ["batch", 3, bad], ("inputs", "x"), err) is None
        assert err == [("bad-shape", f"input 'x' sizes must be integers from 0 to 2**62 or symbolic names, received {bad!r}",
                        ("inputs", "x"))]
    err = Errors()
    assert checked_input_shape("x", [False, MAX_DIM + 2], ("p",), err) is None
    assert [m for _, m, _ in err] == ["input 'x' sizes must be integers from 0 to 2**62 or symbolic names, received False"]


def test_variable_shapes() -> None:
    err = Errors()
    assert checked_variable_shape("w", None, ("variables", "w", "shape"), err) is None
    assert checked_variable_shape("w", [0, MAX_DIM], ("variables", "w", "shape"), err) == [0, MAX_DIM]
    assert err == []
    for bad in (-1, MAX_DIM + 1, True, "n", 1.0):
        err = Errors()
        assert checked_variable_shape("w", [2, bad], ("variables", "w", "shape"), err) is None
        assert err == [("bad-shape", f"variable 'w' needs non-negative integer sizes, received {bad!r}", ("variables", "w", "shape"))]


def inputs(**shapes: list[Any]) -> list[tuple[str, InputSpec]]:
    return [(n, InputSpec(shape=s)) for n, s in shapes.items()]


def test_example_sizes_of_symbolic_dims() -> None:
    err = Errors()
    # default 1, else the dims: entry; the first input that names a dim fixes its place
    assert example_dims(inputs(x=["batch", "seq", 4], y=["seq", "batch"]), {"seq": 7}, err) == {"batch": 1, "seq": 7}
    assert example_dims(inputs(x=["n"]), {"n": 0}, err) == {"n": 0}
    assert example_dims(inputs(x=["n"]), {"n": MAX_DIM}, err) == {"n": MAX_DIM}
    assert err == []
    # an expression that failed (reported before) is skipped
    assert example_dims(inputs(x=["${d", "n"]), {}, err) == {"n": 1}
    assert err == []


def test_example_size_errors() -> None:
    for size in (-1, MAX_DIM + 1):
        err = Errors()
        assert example_dims(inputs(x=[2, "n"]), {"n": size}, err) == {"n": 1}  # reported, then taken as 1
        assert err == [("bad-shape", f"example size of dim 'n' must be from 0 to 2**62, received {size}", ("dims", "n"))]
    err = Errors()
    example_dims(inputs(x=[4, "a-b"], y=[-3]), {}, err)
    assert err == [
        ("bad-shape", "input 'x' dimension 'a-b' must be an integer or a symbolic name", ("inputs", "x", "shape", 1)),
        ("bad-shape", "input 'y' has negative size -3", ("inputs", "y", "shape", 0)),
    ]
    err = Errors()
    assert example_dims(inputs(x=[0, "n"]), {}, err) == {"n": 1} and err == []
