"""Checks before the first step: targets against the model's outputs, and resumes against checkpoints.

:func:`check_targets` compares each loss's and metric's target array with the output it
reads (shapes from ``jax.eval_shape``, no compute): integer class labels must be stored
as integers, lie in ``[0, classes)`` and have the output's shape without the class axis;
other targets must have the output's shape. A target of shape ``(N, 1)`` where ``(N,)``
is expected (or the reverse) is refused with the reshape that fixes it: broadcasting
would silently compare every example with every other.

:func:`compare_fingerprints` names what changed between a checkpoint's run and this one.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from .data import DataError, Dataset

__all__ = ["FINGERPRINT_PARTS", "check_targets", "compare_fingerprints", "data_digest"]

#: the parts of a run a resume must share with its checkpoint, and how to name a change
FINGERPRINT_PARTS = {
    "spec": "the spec's model",
    "optimizer": "the optimizer",
    "schedule": "the learning-rate schedule",
    "training": "the training setup",
    "data": "the data",
}


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(["N", *map(str, shape)]) + (",)" if not shape else ")")


def _reshape_fix(name: str, want: tuple[int, ...]) -> str:
    return f"{name}.reshape(-1{''.join(f', {d}' for d in want)})"


def check_targets(data: Dataset, plan: Any, outputs: tuple[Any, ...]) -> None:
    """Raises a located :class:`DataError` for the first target that does not fit its loss or metric.

    Args:
      data: the dataset (arrays cast to the spec's dtypes, ``stored_dtypes`` as stored).
      plan: the training plan (its loss and metric terms).
      outputs: the model's outputs as ``jax.ShapeDtypeStruct`` (examples first), in order.
    """
    for term in (*plan.losses, *plan.metrics):
        where = ".".join(str(p) for p in term.path) or "train"
        name = term.target
        arr = data.arrays[name]
        pred = tuple(outputs[term.output].shape[1:])
        got = tuple(arr.shape[1:])
        out_name = plan.outputs[term.output]
        what = f"{where} ({term.key}) reads output '{out_name}' of shape {_shape(pred)}"

        def fail(code: str, message: str) -> None:
            raise DataError(message, source=data.source, code=code)

        labels = pred[:-1]
        if term.target_kind == "values" or (term.target_kind == "labels_or_values" and got == pred):
            if got == pred:
                continue
            if got == (*pred, 1) or (*got, 1) == pred:
                fail("target-shape", f"target '{name}' has shape {_shape(got)}, {what}: save it with shape {_shape(pred)} "
                     f"({_reshape_fix(name, pred)}); broadcasting would compare every example with every other")
            fail("target-shape", f"target '{name}' has shape {_shape(got)}, {what}, which needs {_shape(pred)}")
        # integer class labels
        if not pred:
            fail("target-shape", f"{what}: a class-label loss needs a class axis on the output")
        if got != labels:
            fix = f" ({_reshape_fix(name, labels)})" if got == (*labels, 1) else ""
            fail("target-shape", f"target '{name}' has shape {_shape(got)}, {what}: integer class labels need "
                 f"{_shape(labels)}{fix}" + ("" if term.target_kind == "labels" else f", or one-hot rows of {_shape(pred)}"))
        stored = data.stored_dtypes.get(name, arr.dtype)
        if np.dtype(stored).kind == "f":
            whole = bool(np.all(np.mod(arr, 1) == 0)) if arr.dtype.kind == "f" else True
            hint = f"store them as integers ({name}.astype(np.int32))" if whole else (
                "they are not whole numbers: for probability targets use softmax_cross_entropy")
            fail("label-dtype", f"target '{name}' holds {stored} values, but {where} ({term.key}) takes integer class "
                 f"labels in [0, {pred[-1]}); {hint}")
        classes = pred[-1]
        outside = (arr < 0) | (arr >= classes)
        if outside.any():
            first = tuple(int(i) for i in np.argwhere(outside)[0])
            fail("label-range", f"target '{name}' has {int(outside.sum())} label(s) outside [0, {classes}) (output '{out_name}' "
                 f"has {classes} classes), the first {name}[{', '.join(map(str, first))}] = {arr[first]}; "
                 f"labels must be 0 .. {classes - 1}")


def data_digest(data: Dataset) -> str:
    """A hash of the arrays (names, dtypes, shapes, bytes) and the split."""
    h = hashlib.sha256()
    for name in sorted(data.arrays):
        a = np.ascontiguousarray(data.arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    h.update(np.asarray(data.eval_idx, np.int64).tobytes())
    return h.hexdigest()[:16]


def compare_fingerprints(saved: dict[str, str] | None, now: dict[str, str]) -> str | None:
    """``"the optimizer changed (adam(...) -> adamw(...))"``, or None when the runs agree.

    A checkpoint without a fingerprint (written before fingerprints existed) is not compared.
    """
    if not saved:
        return None
    changes = []
    for key, label in FINGERPRINT_PARTS.items():
        old, new = saved.get(key), now.get(key)
        if old is None or old == new:
            continue
        shown = "" if key in ("spec", "data") else f" ({old} -> {new})"
        changes.append(f"{label} changed{shown}")
    return "; ".join(changes) or None
