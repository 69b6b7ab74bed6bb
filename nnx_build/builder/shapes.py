"""Declared sizes: the shapes of inputs and variables, and the example sizes of symbolic dims."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..schemas.spec import InputSpec
from .program import MAX_DIM

__all__ = ["checked_input_shape", "checked_variable_shape", "example_dims"]

Report = Callable[[str, str, tuple[Any, ...]], None]


def checked_input_shape(name: str, shape: Any, path: tuple[Any, ...], err: Report) -> Any:
    """An input's evaluated shape (sizes up to 2**62, or symbolic names); None when reported bad."""
    if shape is None:
        return None
    bad = [d for d in shape if isinstance(d, bool) or not isinstance(d, int | str) or (isinstance(d, int) and d > MAX_DIM)]
    if bad:
        err("bad-shape", f"input '{name}' sizes must be integers from 0 to 2**62 or symbolic names, received {bad[0]!r}", path)
        return None
    return shape


def checked_variable_shape(name: str, shape: Any, path: tuple[Any, ...], err: Report) -> Any:
    """A declared variable's evaluated shape (sizes from 0 to 2**62); None when reported bad."""
    if shape is None:
        return None
    bad = [d for d in shape if isinstance(d, bool) or not isinstance(d, int) or d < 0 or d > MAX_DIM]
    if bad:
        err("bad-shape", f"variable '{name}' needs non-negative integer sizes, received {bad[0]!r}", path)
        return None
    return shape


def example_dims(input_specs: Sequence[tuple[str, InputSpec]], sizes: Mapping[str, int], err: Report) -> dict[str, int]:
    """Each symbolic dim of the inputs with its example size (``dims:``, default 1)."""
    dims: dict[str, int] = {}
    for n, s in input_specs:
        for i, d in enumerate(s.shape):
            if isinstance(d, str):
                if "${" in d:
                    continue  # its expression failed, already reported
                if not d.isidentifier():
                    err("bad-shape", f"input '{n}' dimension {d!r} must be an integer or a symbolic name", ("inputs", n, "shape", i))
                size = sizes.get(d, 1)
                if not 0 <= size <= MAX_DIM:
                    err("bad-shape", f"example size of dim '{d}' must be from 0 to 2**62, received {size}", ("dims", d))
                    size = 1
                dims.setdefault(d, size)
            elif d < 0:
                err("bad-shape", f"input '{n}' has negative size {d}", ("inputs", n, "shape", i))
    return dims
