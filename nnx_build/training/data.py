"""Training data: an ``.npz`` whose arrays are named after the spec's inputs and targets.

The held-out split and each epoch's order are functions of ``(seed, epoch)`` only, so a
run resumed from a checkpoint sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..distributed import process_share
from ..errors import NnxBuildError, did_you_mean

__all__ = ["DataError", "Dataset", "epoch_order", "load_data", "split_indices"]


class DataError(NnxBuildError):
    """The data file does not fit the spec's inputs and targets: ``FILE: error[code]: message``."""

    def __init__(self, message: str, *, source: str | None = None, code: str = "bad-data"):
        self.source, self.code, self.message = source, code, message
        super().__init__(f"{source}: error[{code}]: {message}" if source else message)


@dataclass
class Dataset:
    """The arrays (inputs and targets, cast to their dtypes) and the split."""

    arrays: dict[str, np.ndarray]
    train_idx: np.ndarray
    eval_idx: np.ndarray
    source: str = "<arrays>"
    #: the dtype of each array as stored, before the cast to the spec's dtype
    stored_dtypes: dict[str, np.dtype] = field(default_factory=dict)
    #: float arrays (name -> "input" or "target") whose values the training start-up checks for
    #: non-finite ones, each process its share of the rows (several processes)
    unchecked: dict[str, str] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(next(iter(self.arrays.values())).shape[0])


def split_indices(n: int, eval_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random split: (train indices, held-out indices)."""
    perm = np.random.default_rng((seed, 1)).permutation(n)
    n_eval = int(round(n * eval_split))
    if eval_split > 0 and n_eval == 0:
        n_eval = 1
    return np.sort(perm[n_eval:]), np.sort(perm[:n_eval])


def epoch_order(train_idx: np.ndarray, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The order of the training examples in ``epoch`` (0-based): depends on (seed, epoch) only."""
    if not shuffle:
        return train_idx
    return np.random.default_rng((seed, 2, epoch)).permutation(train_idx)


def _check_shape(name: str, arr: np.ndarray, shape: Any, what: str, source: str) -> None:
    want = list(shape)[1:]  # the first dimension is the example axis
    got = list(arr.shape[1:])
    if len(want) != len(got) or any(isinstance(w, int) and w != g for w, g in zip(want, got, strict=False)):
        shown = ", ".join(str(d) for d in shape)
        raise DataError(f"array '{name}' has shape {tuple(arr.shape)}; {what} '{name}' needs ({shown}) (examples first)",
                        source=source, code="shape-mismatch")


def _read_npz(p: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz``; a located error for anything else (a missing file, ``.npy``, CSV, pickle)."""
    fix = "save the arrays with np.savez(PATH, x=..., y=...)"
    if not p.is_file():
        raise DataError(f"data file {p} does not exist" if not p.exists() else f"data path {p} is not a file; {fix}",
                        source=str(p), code="no-file")
    with p.open("rb") as f:
        magic = f.read(6)
    if magic == b"\x93NUMPY":
        raise DataError(f"this is a single .npy array, not an .npz of named arrays; {fix}", source=str(p), code="not-npz")
    if not zipfile.is_zipfile(p):
        raise DataError(f"this is not an .npz (a zip of named .npy arrays); {fix}", source=str(p), code="not-npz")
    try:
        with np.load(p, allow_pickle=False) as f:
            mapped = _mapped_members(p)
            return {k: mapped[k] if k in mapped else np.asarray(f[k]) for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"cannot read this .npz: {e}; {fix}", source=str(p), code="not-npz") from e


def _mapped_members(p: Path) -> dict[str, np.ndarray]:
    """The members of an ``.npz`` stored without compression (``np.savez``), memory-mapped read-only.

    A stored member is a ``.npy`` file at an offset of the zip: its header is read there and
    the array mapped in place, so reading some rows reads only their pages. Compressed
    members (``np.savez_compressed``), object arrays and empty ones are left out: they are
    read whole.
    """
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(p) as z, p.open("rb") as f:
        for info in z.infolist():
            if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(".npy"):
                continue
            f.seek(info.header_offset)
            local = f.read(30)  # the local file header: name and extra field lengths at bytes 26..29
            if local[:4] != b"PK\x03\x04":
                continue
            f.seek(info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little"))
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                continue
            if dtype.hasobject or math.prod(shape) == 0:
                continue
            out[info.filename[: -len(".npy")]] = np.memmap(
                p, dtype=dtype, mode="r", offset=f.tell(), shape=shape, order="F" if fortran else "C"
            )
    return out


def load_data(path: str | os.PathLike[str] | dict[str, Any], plan: Any) -> Dataset:
    """Reads the inputs and targets of ``plan`` from an ``.npz`` (or a dict of arrays) and splits them."""
    source = str(path) if not isinstance(path, dict) else "<arrays>"
    if isinstance(path, dict):
        raw = {k: np.asarray(v) for k, v in path.items()}
    else:
        raw = _read_npz(Path(path))
    arrays: dict[str, np.ndarray] = {}
    stored: dict[str, np.dtype] = {}
    unchecked: dict[str, str] = {}
    several = process_share()[1] > 1
    missing = []
    wanted: list[tuple[str, str, Any, Any]] = [
        (n, "input", plan.input_specs[n].shape if n in plan.input_specs else None,
         plan.input_specs[n].dtype if n in plan.input_specs else None)
        for n in plan.inputs
    ]
    wanted += [(n, "target", None if t.shape is None else ["examples", *t.shape], t.dtype) for n, t in plan.targets.items()]
    for name, what, shape, dtype in wanted:
        if name not in raw:
            missing.append(f"{what} '{name}'{did_you_mean(name, raw)}")
            continue
        arr = raw[name]
        if arr.ndim == 0:
            raise DataError(f"array '{name}' is a scalar; it needs one row per example", source=source, code="shape-mismatch")
        if arr.dtype.kind not in "biuf":
            raise DataError(f"array '{name}' holds {arr.dtype} values; {what}s are numbers (bool, int or float)",
                            source=source, code="bad-dtype")
        if several and arr.dtype.kind == "f" and (dtype is None or np.dtype(str(dtype)) == arr.dtype):
            unchecked[name] = what  # left to the start-up checks, each process reading its share
        elif arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = np.argwhere(~np.isfinite(arr))[0]
            value = arr[tuple(bad)]
            raise DataError(f"{what} '{name}' holds {np.count_nonzero(~np.isfinite(arr))} non-finite value(s), the first "
                            f"{value} at index {tuple(int(i) for i in bad)}; remove or replace those examples "
                            f"(np.nan_to_num, or drop rows where ~np.isfinite({name}).all(axis=...))",
                            source=source, code="not-finite")
        if shape is not None:
            _check_shape(name, arr, shape, what, source)
        stored[name] = arr.dtype
        if dtype is not None:
            arr = arr.astype(np.dtype(str(dtype)), copy=False)
        arrays[name] = arr
    if missing:
        raise DataError(f"no array for {', '.join(missing)}; its arrays: {', '.join(sorted(raw)) or '(none)'}",
                        source=source, code="missing-array")
    sizes = {k: v.shape[0] for k, v in arrays.items()}
    if len(set(sizes.values())) > 1:
        raise DataError("arrays have different numbers of examples: " + ", ".join(f"{k} {v}" for k, v in sizes.items()),
                        source=source, code="shape-mismatch")
    n = next(iter(sizes.values()))
    train_idx, eval_idx = split_indices(n, plan.train.eval_split, plan.train.seed)
    if len(train_idx) == 0:
        raise DataError(f"no training examples left after holding out {plan.train.eval_split:.0%} of {n}",
                        source=source, code="too-few-examples")
    return Dataset(arrays, train_idx, eval_idx, source, stored, unchecked)
