"""What every exporter shares: entry points, symbolic shapes, files."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..text import first_line

if TYPE_CHECKING:
    from ..fastpath import FastForward, InputInfo

__all__ = ["MAIN", "Entry", "OutputInfo", "file_sha256", "first_line", "jnp_dtype", "poly_shape", "release_memory", "symbolic_args"]

#: the entry name of ``__call__`` (files ``main.mlirbc``, ``main.onnx``; signature ``serving_default``)
MAIN = "main"


@dataclass(frozen=True)
class OutputInfo:
    name: str
    shape: tuple[int | str, ...]
    dtype: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass
class Entry:
    """One exported entry point: ``main`` (``__call__``) or a spec method."""

    name: str
    ff: FastForward
    inputs: tuple[InputInfo, ...]
    outputs: tuple[OutputInfo, ...]
    #: a static variant (``export --dims batch=1 --dims batch=8``): the entry it is a variant of, and its fixed dims
    variant_of: str | None = None
    static_dims: dict[str, int] | None = None

    @property
    def method(self) -> str | None:
        return self.ff.method

    @property
    def signature(self) -> str:
        return "serving_default" if self.name == MAIN else self.name

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "method": self.method,
            "signature": self.signature,
            "inputs": [i.to_json() for i in self.inputs],
            "outputs": [o.to_json() for o in self.outputs],
            **({"variant_of": self.variant_of, "static_dims": dict(self.static_dims or {})} if self.variant_of else {}),
        }


def jnp_dtype(name: str) -> Any:
    import jax.numpy as jnp

    return jnp.dtype(name)


def symbolic_args(inputs: tuple[InputInfo, ...]) -> list[Any]:
    """``jax.ShapeDtypeStruct``s whose named dims are ``jax.export`` symbolic dims (one scope)."""
    import jax
    from jax import export

    names = sorted({d for i in inputs for d in i.shape if isinstance(d, str)})
    dims = dict(zip(names, export.symbolic_shape(", ".join(names)), strict=True)) if names else {}
    return [
        jax.ShapeDtypeStruct(tuple(dims[d] if isinstance(d, str) else d for d in i.shape), jnp_dtype(i.dtype))
        for i in inputs
    ]


def poly_shape(info: InputInfo) -> str:
    """The ``jax2tf`` polymorphic shape of an input: ``"(batch, 2)"``."""
    return "(" + ", ".join(str(d) for d in info.shape) + ("," if len(info.shape) == 1 else "") + ")"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def release_memory() -> None:
    """Gives what a stage freed back to the system before the next one allocates.

    A conversion frees its temporaries (traced graphs, serialized protos, a runtime
    session), but glibc keeps freed blocks in its heaps, so each stage would start from
    the previous stage's high-water mark and the peaks add up. ``malloc_trim`` hands the
    free pages back (glibc only: elsewhere this just collects garbage).
    """
    import ctypes
    import gc
    import sys

    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
            pass
