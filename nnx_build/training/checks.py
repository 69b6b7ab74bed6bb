"""Checks before the first step: targets against the model's outputs, and resumes against checkpoints.

:func:`check_targets` compares each loss's and metric's target array with the output it
reads (shapes from ``jax.eval_shape``, no compute): integer class labels must be stored
as integers, lie in ``[0, classes)`` and have the output's shape without the class axis;
other targets must have the output's shape. A target of shape ``(N, 1)`` where ``(N,)``
is expected (or the reverse) is refused with the reshape that fixes it: broadcasting
would silently compare every example with every other.

With several processes (:mod:`nnx_build.distributed`) each process reads only its share of
the rows: process ``i`` of ``P`` checks rows ``[i*N//P, (i+1)*N//P)`` and hashes the row
blocks ``[i*K//P, (i+1)*K//P)`` of the ``K`` blocks; the counts, first bad indices and block
hashes are gathered (:func:`~nnx_build.distributed.allgather_json`), so every process
reaches the same verdict, word for word, and the same digest.

:func:`data_digest` hashes the data in fixed row blocks (:func:`block_rows`, which depends on
the arrays' shapes only), then the block hashes in order: the value is the same for any
number of processes. :func:`compare_fingerprints` names what changed between a
checkpoint's run and this one; a checkpoint whose data digest has the earlier definition
(one hash over the whole arrays, :func:`data_digest_v1`) is compared with that definition.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..distributed import allgather_json, process_share
from .data import DataError, Dataset

__all__ = ["BLOCK_BYTES", "FINGERPRINT_PARTS", "block_rows", "check_targets", "combine_digest", "compare_fingerprints",
           "data_digest", "data_digest_v1", "digest_blocks", "row_share"]

#: the parts of a run a resume must share with its checkpoint, and how to name a change
FINGERPRINT_PARTS = {
    "spec": "the spec's model",
    "optimizer": "the optimizer",
    "schedule": "the learning-rate schedule",
    "training": "the training setup",
    "data": "the data",
}

#: the data digest's definition: ``"v2:"`` and 16 hex digits; the earlier one had no prefix
DIGEST_VERSION = "v2"
#: about this many bytes of rows (all arrays together) per hashed block and per chunk checked
BLOCK_BYTES = 1 << 20


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(["N", *map(str, shape)]) + (",)" if not shape else ")")


def _reshape_fix(name: str, want: tuple[int, ...]) -> str:
    return f"{name}.reshape(-1{''.join(f', {d}' for d in want)})"


def row_share(n: int, part: int, parts: int) -> tuple[int, int]:
    """The rows ``[start, stop)`` of ``n`` that process ``part`` of ``parts`` reads."""
    return n * part // parts, n * (part + 1) // parts


def block_rows(data: Dataset) -> int:
    """The rows of one hashed block: :data:`BLOCK_BYTES` over the bytes of a row of all arrays (at least 1)."""
    row = sum(a.dtype.itemsize * math.prod(a.shape[1:]) for a in data.arrays.values())
    return max(1, BLOCK_BYTES // max(1, row))


def _first(found: list[Any]) -> tuple[int, list[int] | None]:
    """Per-process ``[count, first index or None]`` (processes in row order) -> total count, first index."""
    firsts = [f for _, f in found if f is not None]
    return sum(int(c) for c, _ in found), (firsts[0] if firsts else None)


def _scan(arr: np.ndarray, start: int, stop: int, step: int, bad: Callable[[np.ndarray], np.ndarray]) -> list[Any]:
    """``[count, first index]`` of the elements of rows ``[start, stop)`` where ``bad`` holds, in chunks of ``step`` rows."""
    count, first = 0, None
    for lo in range(start, stop, step):
        mask = bad(np.asarray(arr[lo : min(stop, lo + step)]))
        c = int(np.count_nonzero(mask))
        if c and first is None:
            at = np.argwhere(mask)[0]
            first = [lo + int(at[0]), *(int(i) for i in at[1:])]
        count += c
    return [count, first]


def _all_whole(arr: np.ndarray, start: int, stop: int, step: int) -> bool:
    return all(bool(np.all(np.mod(arr[lo : min(stop, lo + step)], 1) == 0)) for lo in range(start, stop, step))


def check_targets(data: Dataset, plan: Any, outputs: tuple[Any, ...]) -> None:
    """Raises a located :class:`DataError` for the first target that does not fit its loss or metric.

    Also checks that the float arrays ``load_data`` left to it (``data.unchecked``, with several
    processes) hold only finite values. Each process reads only its share of the rows; the
    verdict is gathered, so all processes raise the same error (a collective: every process calls it).

    Args:
      data: the dataset (arrays cast to the spec's dtypes, ``stored_dtypes`` as stored).
      plan: the training plan (its loss and metric terms).
      outputs: the model's outputs as ``jax.ShapeDtypeStruct`` (examples first), in order.
    """
    # the checks in order: each a failure found from the shapes alone, or one that reads the data
    steps: list[tuple[str, Any]] = [("finite", name) for name in data.unchecked]
    for term in (*plan.losses, *plan.metrics):
        where = ".".join(str(p) for p in term.path) or "train"
        name = term.target
        arr = data.arrays[name]
        pred = tuple(outputs[term.output].shape[1:])
        got = tuple(arr.shape[1:])
        out_name = plan.outputs[term.output]
        what = f"{where} ({term.key}) reads output '{out_name}' of shape {_shape(pred)}"

        def fail(code: str, message: str) -> None:
            steps.append(("fail", (code, message)))

        labels = pred[:-1]
        if term.target_kind == "values" or (term.target_kind == "labels_or_values" and got == pred):
            if got == pred:
                continue
            if got == (*pred, 1) or (*got, 1) == pred:
                fail("target-shape", f"target '{name}' has shape {_shape(got)}, {what}: save it with shape {_shape(pred)} "
                     f"({_reshape_fix(name, pred)}); broadcasting would compare every example with every other")
            else:
                fail("target-shape", f"target '{name}' has shape {_shape(got)}, {what}, which needs {_shape(pred)}")
            break
        # integer class labels
        if not pred:
            fail("target-shape", f"{what}: a class-label loss needs a class axis on the output")
            break
        if got != labels:
            fix = f" ({_reshape_fix(name, labels)})" if got == (*labels, 1) else ""
            fail("target-shape", f"target '{name}' has shape {_shape(got)}, {what}: integer class labels need "
                 f"{_shape(labels)}{fix}" + ("" if term.target_kind == "labels" else f", or one-hot rows of {_shape(pred)}"))
            break
        stored = data.stored_dtypes.get(name, arr.dtype)
        if np.dtype(stored).kind == "f":
            steps.append(("float-labels", (name, where, term.key, pred[-1])))
            break  # refused whatever the values: the hint alone depends on them
        steps.append(("range", (name, pred[-1], out_name)))
    if not any(kind in ("finite", "float-labels", "range") for kind, _ in steps):
        _raise_first(data, steps, [])
        return
    # this process's share of the rows, in chunks; then every process's findings, in row order
    part, parts = process_share()
    start, stop = row_share(data.n, part, parts)
    step = block_rows(data)
    read: dict[tuple[Any, ...], Any] = {}  # a loss and a metric on the same labels: read once
    mine: list[Any] = []
    for kind, arg in steps:
        if kind == "fail":
            continue
        key = (kind, arg) if kind == "finite" else (kind, *arg[:2])
        if key not in read:
            if kind == "finite":
                read[key] = _scan(data.arrays[arg], start, stop, step, lambda a: ~np.isfinite(a))
            elif kind == "float-labels":
                arr = data.arrays[arg[0]]
                read[key] = _all_whole(arr, start, stop, step) if arr.dtype.kind == "f" else True
            else:
                read[key] = _scan(data.arrays[arg[0]], start, stop, step, lambda a, c=arg[1]: (a < 0) | (a >= c))
        mine.append(read[key])
    _raise_first(data, steps, allgather_json(mine))


def _raise_first(data: Dataset, steps: list[tuple[str, Any]], found: list[list[Any]]) -> None:
    """Raises the error of the first step that fails, from every process's findings (``found[process][i]``)."""
    i = 0
    for kind, arg in steps:
        if kind == "fail":
            raise DataError(arg[1], source=data.source, code=arg[0])
        here = [f[i] for f in found]
        i += 1
        if kind == "float-labels":
            name, where, key, classes = arg
            stored = data.stored_dtypes.get(name, data.arrays[name].dtype)
            hint = f"store them as integers ({name}.astype(np.int32))" if all(here) else (
                "they are not whole numbers: for probability targets use softmax_cross_entropy")
            raise DataError(f"target '{name}' holds {stored} values, but {where} ({key}) takes integer class "
                            f"labels in [0, {classes}); {hint}", source=data.source, code="label-dtype")
        count, first = _first(here)
        if not count or first is None:
            continue
        arr = data.arrays[arg if kind == "finite" else arg[0]]
        value = arr[tuple(first)]
        if kind == "finite":
            what = data.unchecked[arg]
            raise DataError(f"{what} '{arg}' holds {count} non-finite value(s), the first {value} at index {tuple(first)}; "
                            f"remove or replace those examples (np.nan_to_num, or drop rows where "
                            f"~np.isfinite({arg}).all(axis=...))", source=data.source, code="not-finite")
        name, classes, out_name = arg
        raise DataError(f"target '{name}' has {count} label(s) outside [0, {classes}) (output '{out_name}' "
                        f"has {classes} classes), the first {name}[{', '.join(map(str, first))}] = {value}; "
                        f"labels must be 0 .. {classes - 1}", source=data.source, code="label-range")


def digest_blocks(data: Dataset, part: int = 0, parts: int = 1) -> list[str]:
    """The SHA-256 (hex) of each row block process ``part`` of ``parts`` owns, in order.

    Block ``b`` is rows ``[b*R, (b+1)*R)`` (``R`` = :func:`block_rows`) of every array, by
    name, in C order; the process owns blocks ``[part*K//parts, (part+1)*K//parts)`` of ``K``.
    """
    rows = block_rows(data)
    lo, hi = row_share(-(-data.n // rows), part, parts)
    names = sorted(data.arrays)
    out = []
    for b in range(lo, hi):
        h = hashlib.sha256()
        for name in names:
            h.update(np.ascontiguousarray(data.arrays[name][b * rows : (b + 1) * rows]))
        out.append(h.hexdigest())
    return out


def combine_digest(data: Dataset, blocks: list[str]) -> str:
    """The data digest from every block's hash (:func:`digest_blocks`, all of them, in order)."""
    h = hashlib.sha256(f"{DIGEST_VERSION}|{block_rows(data)}|".encode())
    for name in sorted(data.arrays):
        a = data.arrays[name]
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
    for b in blocks:
        h.update(bytes.fromhex(b))
    h.update(np.asarray(data.eval_idx, np.int64).tobytes())
    return f"{DIGEST_VERSION}:{h.hexdigest()[:16]}"


def data_digest(data: Dataset) -> str:
    """A hash of the arrays (names, dtypes, shapes, bytes) and the split, the same for any number of processes.

    Each process hashes only its blocks (:func:`digest_blocks`); the block hashes are gathered
    (a collective: every process calls it).
    """
    part, parts = process_share()
    return combine_digest(data, [b for got in allgather_json(digest_blocks(data, part, parts)) for b in got])


def data_digest_v1(data: Dataset) -> str:
    """The earlier definition (checkpoints written before ``v2``): one hash over the whole arrays, read by every process."""
    h = hashlib.sha256()
    for name in sorted(data.arrays):
        a = np.ascontiguousarray(data.arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    h.update(np.asarray(data.eval_idx, np.int64).tobytes())
    return h.hexdigest()[:16]


def compare_fingerprints(saved: dict[str, str] | None, now: dict[str, str],
                         data_v1: Callable[[], str] | None = None) -> str | None:
    """``"the optimizer changed (adam(...) -> adamw(...))"``, or None when the runs agree.

    A checkpoint without a fingerprint (written before fingerprints existed) is not compared.
    A data digest of the earlier definition (no ``v2:`` prefix) is compared with ``data_v1()``
    (:func:`data_digest_v1`), or not at all without it.
    """
    if not saved:
        return None
    old = saved.get("data")
    if old is not None and not old.startswith(f"{DIGEST_VERSION}:"):
        now = {**now, "data": data_v1() if data_v1 is not None else old}
    changes = []
    for key, label in FINGERPRINT_PARTS.items():
        old, new = saved.get(key), now.get(key)
        if old is None or old == new:
            continue
        shown = "" if key in ("spec", "data") else f" ({old} -> {new})"
        changes.append(f"{label} changed{shown}")
    return "; ".join(changes) or None
