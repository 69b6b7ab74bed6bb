"""Threefry lowered without its loop while the initialisers compile.

On CPU, JAX lowers the Threefry hash behind every ``jax.random`` draw as a five-step
``while`` loop. XLA cannot fuse across a loop, so each draw materialises its counters and
the loop's state: about five buffers the size of the weight being drawn, live at once (a
stacked, scanned weight of 1 GB needs 5 GB of temporaries to initialise). The unrolled
lowering JAX uses on other platforms computes the same integers with the same operations
(the 20 rounds written out), and XLA fuses a whole draw, from the counters to the scaled
float, into one loop over the weight: no temporaries, and a program that compiles in
about half the time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["unrolled_threefry"]


@contextlib.contextmanager
def unrolled_threefry() -> Iterator[None]:
    """Within the block, programs lowered for CPU draw random bits with the unrolled
    Threefry lowering; the previous rule is restored afterwards. Where JAX's internals are
    not as expected, nothing changes (the rolled lowering gives the same values)."""
    try:
        from jax._src.interpreters import mlir
        from jax._src.random import threefry2x32 as threefry

        prim = threefry.threefry2x32_p
        unrolled = threefry._threefry2x32_lowering_rule
        table = mlir._platform_specific_lowerings["cpu"]
        before = table.get(prim)
    except (ImportError, AttributeError, KeyError):
        yield
        return
    mlir.register_lowering(prim, unrolled, platform="cpu")
    try:
        yield
    finally:
        if before is None:
            table.pop(prim, None)
        else:
            table[prim] = before
