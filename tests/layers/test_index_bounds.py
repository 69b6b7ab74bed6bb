"""The index op takes every valid position, -size to size - 1, and refuses the two just outside.

The outputs are compared with numpy's own indexing, the reference for what a position means.
"""

from __future__ import annotations

import numpy as np
import pytest

import nnx_build
from nnx_build import SpecErrors

SIZE = 5


def _spec(index: int, axis: int = 1) -> str:
    return (
        "format: 1\nname: m\n"
        f"inputs:\n  x: [2, {SIZE}, 3]\n"
        f"layers:\n  - i: {{type: index, axis: {axis}, index: {index}}}\n"
        "outputs: [i]\n"
    )


@pytest.mark.parametrize("index", [-SIZE, -SIZE + 1, -1, 0, SIZE - 1])
def test_valid_positions_check_build_and_agree_with_numpy(index: int) -> None:
    report = nnx_build.check(_spec(index))
    assert report is not None
    model = nnx_build.build(_spec(index))
    x = np.arange(2 * SIZE * 3, dtype=np.float32).reshape(2, SIZE, 3)
    np.testing.assert_array_equal(np.asarray(model(x)), x[:, index])


@pytest.mark.parametrize("axis", [-1, 0, 2])
def test_minus_size_on_other_axes(axis: int) -> None:
    shape = (2, SIZE, 3)
    size = shape[axis]
    text = _spec(-size, axis)
    x = np.arange(30, dtype=np.float32).reshape(shape)
    np.testing.assert_array_equal(np.asarray(nnx_build.build(text)(x)), np.take(x, -size, axis=axis))


@pytest.mark.parametrize("index", [SIZE, -SIZE - 1])
def test_positions_just_outside_are_refused(index: int) -> None:
    with pytest.raises(SpecErrors) as info:
        nnx_build.check(_spec(index))
    (err,) = info.value.errors
    assert f"has index {index}, outside axis 1 of size {SIZE}" in err.message, err.message
