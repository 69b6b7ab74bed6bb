"""Weight files: read them into a flat ``{"path/to/var": array}`` dict and fit a model.

Formats are looked up in :data:`FORMATS` in order; each has a ``matches(path)`` test and a
``load(path)`` reader. ``.npz`` (the pure-dict state, path keys joined by ``'/'``) is
built in; another format (an orbax checkpoint directory, ...) registers itself with
:func:`register_format`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import did_you_mean
from .errors import WeightsError

__all__ = ["FORMATS", "WeightFormat", "apply_weights", "load_weights", "read_weights", "register_format", "save_weights"]


@dataclass(frozen=True)
class WeightFormat:
    name: str
    matches: Callable[[Path], bool]
    load: Callable[[Path], dict[str, np.ndarray]]


FORMATS: list[WeightFormat] = []


def register_format(name: str, matches: Callable[[Path], bool], load: Callable[[Path], dict[str, np.ndarray]], *, first: bool = False) -> None:
    """Adds a weight format; ``load`` returns ``{"path/to/var": array}``."""
    fmt = WeightFormat(name, matches, load)
    FORMATS[:] = [f for f in FORMATS if f.name != name]
    FORMATS.insert(0, fmt) if first else FORMATS.append(fmt)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError) as e:
        raise WeightsError(f"cannot read weights file {path}: {e}") from e


def _is_orbax_dir(path: Path) -> bool:
    return path.is_dir()


def _load_orbax(path: Path) -> dict[str, np.ndarray]:
    # an `nnx-build train --out DIR` checkpoint directory (its latest step), a step folder
    # or its model item; the reader lives with the training code that writes them
    from ..training.checkpoint import CheckpointError, read_model_weights

    try:
        return read_model_weights(path)
    except CheckpointError as e:
        raise WeightsError(str(e)) from e


register_format("npz", lambda p: p.suffix == ".npz" and p.is_file(), _load_npz)
register_format("orbax", _is_orbax_dir, _load_orbax)


def read_weights(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Reads a weights file into ``{"path/to/var": array}``."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"weights file {path} does not exist")
    for fmt in FORMATS:
        if fmt.matches(path):
            return fmt.load(path)
    raise WeightsError(f"{path}: unknown weights format; expected one of: {', '.join(f.name for f in FORMATS)}")


def save_weights(model_or_weights: Any, path: str | os.PathLike[str]) -> None:
    """Writes every non-RNG variable of a model (or a flat weights dict) to an ``.npz``."""
    from ..fastpath import flat_weights

    weights = model_or_weights if isinstance(model_or_weights, Mapping) else flat_weights(model_or_weights)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{k: np.asarray(v) for k, v in weights.items()})


def apply_weights(model: Any, weights: Mapping[str, Any], *, source: str = "weights") -> None:
    """Sets ``model``'s variables from ``weights`` after checking every name, shape and dtype.

    Keys of RNG state (``.../rngs/key``) are ignored. Raises :class:`WeightsError` naming
    each variable that is missing, unknown or of the wrong shape, before changing anything.
    """
    import jax.numpy as jnp
    from flax import nnx

    from ..fastpath import weight_key

    variables = {weight_key(p): v for p, v in nnx.to_flat_state(nnx.state(model, nnx.Not(nnx.RngState)))}
    rng_keys = {weight_key(p) for p, _ in nnx.to_flat_state(nnx.state(model, nnx.RngState))}
    problems: list[str] = []
    for k, var in variables.items():
        if k not in weights:
            problems.append(f"variable '{k}' {tuple(var.shape)} is missing")
            continue
        arr = np.asarray(weights[k])
        if tuple(arr.shape) != tuple(var.shape):
            problems.append(f"variable '{k}' has shape {tuple(arr.shape)} in {source}, the spec needs {tuple(var.shape)}")
        elif not np.can_cast(arr.dtype, np.dtype(var.dtype), casting="same_kind"):
            problems.append(f"variable '{k}' has dtype {arr.dtype} in {source}, the spec needs {np.dtype(var.dtype)}")
    for k in weights:
        if k not in variables and k not in rng_keys:
            problems.append(f"'{k}' in {source} is not a variable of the model{did_you_mean(k, variables)}")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise WeightsError(f"{source} does not fit the spec: " + "; ".join(problems[:3]) + more)
    for k, var in variables.items():
        var.set_value(jnp.asarray(weights[k], dtype=var.dtype))


def load_weights(model: Any, path: str | os.PathLike[str]) -> None:
    """Reads a weights file and applies it to ``model`` (see :func:`apply_weights`)."""
    apply_weights(model, read_weights(path), source=str(path))
