"""The table of weight formats: name -> (detect, load, save).

Each format reads a file (or folder) into a flat ``{"path/to/var": array}`` dict and
writes one back. To add a format, write its three functions and add one line to
:data:`FORMATS` (or call :func:`register_format` from a plugin). ``detect`` answers "is
this existing path mine?" when reading; when writing, a format is chosen by name or by
the path's suffix (:attr:`WeightFormat.suffix`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import WeightsError

__all__ = ["FORMATS", "WeightFormat", "register_format"]

Flat = dict[str, np.ndarray]


@dataclass(frozen=True)
class WeightFormat:
    """One weight format.

    Attributes:
      name: what users type (``format="npz"``).
      suffix: the path suffix that selects it when saving (``""``: a folder).
      detect: ``detect(path)`` for an existing path: is it in this format?
      load: ``load(path) -> {"a/b": array}``.
      save: ``save(weights, path)``.
    """

    name: str
    suffix: str
    detect: Callable[[Path], bool]
    load: Callable[[Path], Flat]
    save: Callable[[Mapping[str, Any], Path], None]


# ---- npz: the pure-dict state, keys joined by '/' ---------------------------------------


def _npz_detect(path: Path) -> bool:
    return path.is_file() and path.suffix == ".npz"


def _npz_load(path: Path) -> Flat:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError) as e:
        raise WeightsError(f"cannot read weights file {path}: {e}") from e


def _npz_save(weights: Mapping[str, Any], path: Path) -> None:
    # written beside and renamed: a reader sees the old file or the new one, never half
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in weights.items()})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---- orbax: an ``nnx-build train --out`` checkpoint folder, a step folder or its model item --


def _orbax_detect(path: Path) -> bool:
    return path.is_dir()


def _orbax_load(path: Path) -> Flat:
    from ..training.checkpoint import CheckpointError, read_model_weights

    try:
        return read_model_weights(path)
    except CheckpointError as e:
        raise WeightsError(str(e)) from e


def _orbax_save(weights: Mapping[str, Any], path: Path) -> None:
    # the ``model`` item of a checkpoint step, as ``nnx-build train --out`` writes it
    import orbax.checkpoint as ocp

    from ..training.checkpoint import flat_to_nested

    item = path.absolute() / "model"
    if item.exists():
        raise WeightsError(f"{path} already holds a checkpoint; save to a new folder")
    checkpointer = ocp.StandardCheckpointer()
    try:
        checkpointer.save(item, flat_to_nested({k: np.asarray(v) for k, v in weights.items()}))
        checkpointer.wait_until_finished()
    finally:
        checkpointer.close()


FORMATS: dict[str, WeightFormat] = {
    "npz": WeightFormat("npz", ".npz", _npz_detect, _npz_load, _npz_save),
    "orbax": WeightFormat("orbax", "", _orbax_detect, _orbax_load, _orbax_save),
}


def register_format(fmt: WeightFormat, *, first: bool = False) -> None:
    """Adds (or replaces) a format; ``first`` puts it ahead of the others when detecting."""
    others = {k: v for k, v in FORMATS.items() if k != fmt.name}
    FORMATS.clear()
    FORMATS.update({fmt.name: fmt, **others} if first else {**others, fmt.name: fmt})
