"""Verification inputs: every symbolic dim at two or more sizes, integer ids over their range.

Round ``r`` gives the batch dim (``batch``, else the first named dim) the ``r``-th batch
size and every other named dim a size of its own (``batch size + 1``, ``+ 2``, ... in
name order), so that no two dims are equal by accident and each varies between rounds.
When the JAX model refuses those sizes (a reshape needing a multiple, a sequence longer
than its positional table) the round falls back to the spec's example sizes (``dims:``).
Dims fixed at export (``--dims``) are plain sizes in the manifest and are not varied; with
no named dim left there is one round.
Integer inputs read by an ``Embed`` are drawn in ``[0, num_embeddings)``; other integer and
boolean inputs in ``{0, 1}``; floating inputs from a standard normal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .dtypes import as_float, np_dtype

__all__ = ["DEFAULT_BATCH_SIZES", "SEP", "Drawn", "draw_inputs", "to_numpy"]

DEFAULT_BATCH_SIZES = (1, 7)
#: inputs are keyed ``entry|round|input``, outputs ``run|entry|round|output``
SEP = "|"


def to_numpy(value: Any) -> np.ndarray:
    """An array of any runtime (JAX, TensorFlow, onnxruntime) as a host numpy array."""
    return np.asarray(value)


@dataclass
class Drawn:
    """Inputs of every round, JAX's outputs on them, and the dim sizes of each round."""

    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    expected: dict[str, list[list[np.ndarray]]] = field(default_factory=dict)
    sizes: list[dict[str, int]] = field(default_factory=list)
    batch_dim: str | None = None


def _dim_names(entries: list[dict[str, Any]]) -> tuple[str | None, list[str]]:
    names = sorted({d for e in entries for i in e["inputs"] for d in i["shape"] if isinstance(d, str)})
    batch = "batch" if "batch" in names else (names[0] if names else None)
    return batch, [d for d in names if d != batch]


def _draw(rng: np.random.Generator, shape: tuple[int, ...], dtype: str, low_high: list[int] | None) -> np.ndarray:
    dt = np_dtype(dtype)
    if np.issubdtype(dt, np.bool_):
        return rng.integers(0, 2, shape).astype(dt)
    if np.issubdtype(dt, np.integer):
        low, high = low_high if low_high is not None else (0, 2)
        return rng.integers(low, high, shape).astype(dt)
    return rng.standard_normal(shape).astype(dt)


def _outputs(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, tuple | list) else (value,)


def _finite(arrays: list[np.ndarray]) -> bool:
    return all(bool(np.isfinite(as_float(a)).all()) for a in arrays if a.dtype.kind in "fc" or a.dtype.name == "bfloat16")


def draw_inputs(
    entries: list[dict[str, Any]],
    forwards: dict[str, Any],
    batch_sizes: tuple[int, ...],
    dims: dict[str, int],
    int_ranges: dict[str, dict[str, list[int]]],
    seed: int = 0,
    *,
    vary: bool = True,
) -> Drawn:
    """Draws the inputs of every round and runs ``forwards`` (entry name -> JAX callable) on them.

    ``vary=False`` gives the named dims other than the batch dim their example sizes only.
    """
    batch, others = _dim_names(entries)
    drawn = Drawn(batch_dim=batch)
    if batch is None:
        batch_sizes = batch_sizes[:1]  # every shape is static: one round
    for r, b in enumerate(batch_sizes):
        varied = {**({batch: b} if batch else {}), **{d: b + j + 1 for j, d in enumerate(others)}}
        example = {**({batch: b} if batch else {}), **{d: int(dims.get(d, 1)) for d in others}}
        candidates = [varied] if varied == example else [varied, example] if vary else [example]
        error: BaseException | None = None
        chosen: tuple[dict[str, np.ndarray], dict[str, list[np.ndarray]], dict[str, int]] | None = None
        for sizes in candidates:
            try:
                inputs, expected = _round(entries, forwards, sizes, int_ranges, np.random.default_rng([seed, r]), r)
            except Exception as ex:  # noqa: BLE001  (the model refuses these sizes: the next candidate)
                error = error or ex
                continue
            finite = all(_finite(v) for v in expected.values())
            if chosen is None or finite:
                chosen = (inputs, expected, sizes)
            if finite:
                break  # else: out of range (a positional table too short)? try the example sizes
        if chosen is None:
            from .common import first_line
            from .errors import ExportError

            raise ExportError(f"verification: the JAX model cannot run at {_text(candidates[-1])}: {first_line(error)}") from error
        inputs, expected, sizes = chosen
        drawn.inputs.update(inputs)
        for name, outs in expected.items():
            drawn.expected.setdefault(name, []).append(outs)
        drawn.sizes.append(sizes)
    return drawn


def _text(sizes: dict[str, int]) -> str:
    return ", ".join(f"{d}={n}" for d, n in sizes.items())


def _round(
    entries: list[dict[str, Any]], forwards: dict[str, Any], sizes: dict[str, int],
    int_ranges: dict[str, dict[str, list[int]]], rng: np.random.Generator, r: int,
) -> tuple[dict[str, np.ndarray], dict[str, list[np.ndarray]]]:
    inputs: dict[str, np.ndarray] = {}
    expected: dict[str, list[np.ndarray]] = {}
    for e in entries:
        ranges = int_ranges.get(e["name"], {})
        args = []
        for i in e["inputs"]:
            shape = tuple(sizes.get(d, 1) if isinstance(d, str) else d for d in i["shape"])
            v = _draw(rng, shape, i["dtype"], ranges.get(i["name"]))
            inputs[SEP.join((e["name"], str(r), i["name"]))] = v
            args.append(v)
        expected[e["name"]] = [to_numpy(v) for v in _outputs(forwards[e["name"]](*args))]
    return inputs, expected
