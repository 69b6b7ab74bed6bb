"""The arrays of spec test cases: random inputs drawn, goldens stored and compared."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

__all__ = ["compare", "random_array", "storable", "write_npz"]


def random_array(rng: Any, shape: tuple[int, ...], dtype: str, low: float | None, high: float | None) -> Any:
    """A random input: booleans, integers in ``[low, high)`` (default ``[0, 16)``), floats
    uniform in ``[low, high)`` when a bound is given, else standard normal."""
    import jax.numpy as jnp
    import numpy as np

    dt = jnp.dtype(dtype)
    if dt == np.bool_:
        return rng.random(shape) < 0.5
    if np.issubdtype(dt, np.integer):
        lo = 0 if low is None else int(low)
        hi = 16 if high is None else int(high)
        return rng.integers(lo, hi, size=shape).astype(dt)
    if low is not None or high is not None:
        return rng.uniform(0.0 if low is None else low, 1.0 if high is None else high, size=shape).astype(dt)
    return rng.standard_normal(shape).astype(dt)


def storable(value: Any) -> Any:
    """``value`` as an array ``np.savez`` stores (bfloat16 and other extension types as float32)."""
    import numpy as np

    arr = np.asarray(value)
    if arr.dtype.kind not in "biufc":  # bfloat16 and other extension types: store as float32
        arr = arr.astype(np.float32)
    return arr


def write_npz(path: Path, arrays: dict[str, Any]) -> None:
    """Writes ``arrays`` to ``path`` whole or not at all (a temporary file renamed in place)."""
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)


def compare(name: str, got: Any, want: Any, rtol: float, atol: float) -> list[str]:
    """What differs between output ``name`` and its golden (no lines when they agree)."""
    import numpy as np

    if got.dtype.kind not in "fc" or want.dtype.kind not in "fc":
        if np.array_equal(got, want):
            return []
        bad = np.argwhere(got != want)
        idx = tuple(int(i) for i in bad[0])
        return [f"output '{name}': {len(bad)} of {got.size} elements differ; first at {idx}: got {got[idx]}, golden {want[idx]}"]
    g = got.astype(np.float64)
    w = want.astype(np.float64)
    close = np.isclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
    if close.all():
        return []
    diff = np.abs(g - w)
    diff[close] = 0
    idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape)) if diff.ndim else ()
    n_bad = int((~close).sum())
    return [
        f"output '{name}': {n_bad} of {got.size} elements differ; largest at {idx}: "
        f"got {g[idx]:.7g}, golden {w[idx]:.7g} (abs diff {diff[idx]:.3g})"
    ]
