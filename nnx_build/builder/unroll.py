"""Scanned repeats run unrolled: one call per stacked copy, for converters that want plain ops.

A ``repeat: N`` step with ``scan: true`` holds its N copies stacked (every variable with a
leading axis of N) and runs them with ``nnx.scan``. Inside :func:`unrolled_scans` the
forward instead slices copy ``i`` out of the stack and calls it, N times: the same
arithmetic, no ``scan`` in the traced program. ONNX export uses it: ``jax2onnx`` converts a
scan into a ``Loop`` of traced arithmetic (no ``LayerNormalization``, ``Gelu``, fused
``MatMul``), and the RNG keys a scan threads through as carries cannot be held by ONNX at
all. A concrete (closed-over) weight is sliced when traced, not in the traced program, so
each copy's weights become constants of their own.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

__all__ = ["run_unrolled", "unrolled_scans", "unrolling"]

_UNROLL: contextvars.ContextVar[bool] = contextvars.ContextVar("nnx_build_unroll_scans", default=False)


@contextlib.contextmanager
def unrolled_scans() -> Iterator[None]:
    """Inside, every scanned repeat of a built module runs as N calls of its copies."""
    token = _UNROLL.set(True)
    try:
        yield
    finally:
        _UNROLL.reset(token)


def unrolling() -> bool:
    """Whether scanned repeats run unrolled here (inside :func:`unrolled_scans`)."""
    return _UNROLL.get()


def run_unrolled(stacked: Any, repeat: int, carry: tuple[Any, ...], shared: tuple[Any, ...]) -> tuple[Any, ...]:
    """Runs the ``repeat`` copies stacked in ``stacked`` one after the other, as ``nnx.scan`` would."""
    import jax
    from flax import nnx

    graphdef, state = nnx.split(stacked)
    for i in range(repeat):
        # concrete values (closed-over weights, RNG keys) are sliced now, not staged into
        # the trace: the copy's weights become constants of their own (views of the stack),
        # and RNG keys that eval mode leaves unused never reach the traced program
        with jax.ensure_compile_time_eval():
            copy = jax.tree.map(lambda x, i=i: _copy(x, i), state)
        layer = nnx.merge(graphdef, copy)
        out = layer(*carry, *shared)
        carry = out if isinstance(out, tuple) else (out,)
    return carry


def _copy(x: Any, i: int) -> Any:
    """Copy ``i`` of a stacked value: for a concrete weight, a host view of the stack.

    Sliced as a JAX array, every copy would be a new buffer: the converter would hold a
    second set of the stacked weights while it runs. A numpy view shares the stack's
    memory (on CPU ``np.asarray`` of a JAX array copies nothing) and traces as the same
    constant. Tracers, RNG keys (no numpy form) and arrays on accelerators (whose host
    copy JAX would keep with the array) are sliced as they are.
    """
    import jax
    import numpy as np

    if (
        isinstance(x, jax.Array)
        and not isinstance(x, jax.core.Tracer)
        and not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
        and all(d.platform == "cpu" for d in x.devices())
    ):
        return np.asarray(x)[i]
    return x[i]
