"""The named transforms of a ``weights:`` rule: a checkpoint tensor's layout into a variable's.

``transpose`` (or a permutation), ``oihw_to_hwio``, ``reshape`` (to the variable's shape,
or explicit dims) and ``cast``; each runs forwards when loading and backwards when
writing the model's weights under the checkpoint's names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import did_you_mean

__all__ = ["MappingProblem", "Transform", "parse_transform"]


class MappingProblem(Exception):
    """A transform that cannot apply to a shape (becomes a located error)."""


@dataclass(frozen=True)
class Transform:
    """One named change of a tensor on its way from the checkpoint to a variable.

    ``shape`` says what it does to a shape and dtype (checked before reading),
    ``apply`` does it, ``invert`` undoes it (for writing the checkpoint back).
    """

    name: str
    arg: Any = None

    def __str__(self) -> str:
        return self.name if self.arg is None else f"{{{self.name}: {self.arg}}}"

    def _perm(self, ndim: int) -> tuple[int, ...]:
        if self.name == "oihw_to_hwio":
            if ndim < 3:
                raise MappingProblem(f"oihw_to_hwio needs a conv kernel [out, in, *spatial], received {ndim} dimension(s)")
            return (*range(2, ndim), 1, 0)
        if self.arg is None:
            return tuple(reversed(range(ndim)))
        perm = tuple(self.arg)
        if sorted(perm) != list(range(ndim)):
            raise MappingProblem(f"transpose {list(perm)} is not a permutation of the {ndim} axes of the tensor")
        return perm

    def shape(self, shape: tuple[int, ...], dtype: np.dtype, target: tuple[int, ...]) -> tuple[tuple[int, ...], np.dtype]:
        if self.name in ("transpose", "oihw_to_hwio"):
            return tuple(shape[i] for i in self._perm(len(shape))), dtype
        if self.name == "reshape":
            want = list(target if self.arg is None else self.arg)
            size = int(np.prod(shape, dtype=np.int64))
            if want.count(-1) == 1:
                rest = int(np.prod([d for d in want if d != -1], dtype=np.int64))
                if rest == 0 or size % rest:
                    raise MappingProblem(f"cannot reshape {shape} to {tuple(want)}")
                want[want.index(-1)] = size // rest
            if int(np.prod(want, dtype=np.int64)) != size:
                raise MappingProblem(f"cannot reshape {shape} ({size:,} values) to {tuple(want)}")
            return tuple(int(d) for d in want), dtype
        if self.name == "cast":
            return shape, _dtype(self.arg)
        raise AssertionError(self.name)

    def apply(self, x: np.ndarray, target: tuple[int, ...]) -> np.ndarray:
        if self.name in ("transpose", "oihw_to_hwio"):
            return np.transpose(x, self._perm(x.ndim))
        if self.name == "reshape":
            return x.reshape(self.shape(x.shape, x.dtype, target)[0])
        return x.astype(_dtype(self.arg))

    def invert(self, y: np.ndarray, before: tuple[tuple[int, ...], np.dtype]) -> np.ndarray:
        shape, dtype = before
        if self.name in ("transpose", "oihw_to_hwio"):
            return np.transpose(y, np.argsort(self._perm(y.ndim)))
        if self.name == "reshape":
            return y.reshape(shape)
        return y.astype(dtype)


TRANSFORMS = {
    "transpose": "reverse the axes (torch Linear [out, in] -> [in, out]); {transpose: [1, 0, 2]}: a permutation",
    "oihw_to_hwio": "torch conv kernel [out, in, *spatial] -> [*spatial, in, out]",
    "reshape": "to the variable's shape (a [768, 768] projection into [768, 12, 64]); {reshape: [12, 64, -1]}",
    "cast": "{cast: float32}: change the dtype",
}


def _dtype(name: Any) -> np.dtype:
    try:
        return np.dtype(name)
    except TypeError:
        import ml_dtypes

        return np.dtype(getattr(ml_dtypes, str(name)))


def parse_transform(item: Any) -> Transform:
    if isinstance(item, str):
        name, arg = item, None
    elif isinstance(item, dict) and len(item) == 1:
        (name, arg), = item.items()
    else:
        raise MappingProblem(f"a transform is a name or a one-key mapping ({{reshape: [12, 64, -1]}}), received {item!r}")
    if name not in TRANSFORMS:
        raise MappingProblem(f"unknown transform '{name}'{did_you_mean(str(name), TRANSFORMS)}; choose from {', '.join(TRANSFORMS)}")
    if name == "cast":
        if not isinstance(arg, str):
            raise MappingProblem("cast needs a dtype: {cast: float32}")
        try:
            _dtype(arg)
        except (TypeError, AttributeError):
            raise MappingProblem(f"cast: '{arg}' is not a dtype (float32, float16, bfloat16, ...)") from None
    elif name in ("transpose", "reshape") and arg is not None:
        if not isinstance(arg, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in arg):
            raise MappingProblem(f"{name} takes a list of integers, received {arg!r}")
    elif name == "oihw_to_hwio" and arg is not None:
        raise MappingProblem("oihw_to_hwio takes no argument")
    return Transform(name, None if arg is None else (str(arg) if name == "cast" else tuple(arg)))
