"""Weights of built models: save them, load them, into a module or a spec.

>>> model = nnx_build.build("spec.yaml")                   # doctest: +SKIP
>>> nnx_build.save_weights(model, "w.npz")                 # doctest: +SKIP
>>> model2 = nnx_build.load_weights("spec.yaml", "w.npz")  # doctest: +SKIP

Files hold the flat ``{"path/to/var": array}`` dict of every non-RNG variable (keys as
``nnx.to_flat_state`` paths joined by ``'/'``: ``"linear/kernel"``). Formats come from one
table, :data:`~nnx_build.weights.formats.FORMATS` (``npz``; ``orbax``: an ``nnx-build
train --out`` checkpoint folder). Loading checks every name, shape and dtype before
changing anything, and says what does not fit in one line naming the file and variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import did_you_mean
from .errors import WeightsError
from .formats import FORMATS, WeightFormat, register_format

__all__ = [
    "FORMATS",
    "WeightFormat",
    "WeightsError",
    "apply_weights",
    "load_weights",
    "read_weights",
    "register_format",
    "save_weights",
    "write_weights",
]


def _format_named(name: str) -> WeightFormat:
    if name not in FORMATS:
        raise WeightsError(f"unknown weights format '{name}'{did_you_mean(name, FORMATS)}; choose from {', '.join(FORMATS)}")
    return FORMATS[name]


def read_weights(path: str | os.PathLike[str], *, format: str | None = None) -> dict[str, np.ndarray]:  # noqa: A002
    """Reads a weights file (or checkpoint folder) into ``{"path/to/var": array}``."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"weights file {path} does not exist")
    if format is not None:
        return _format_named(format).load(path)
    for fmt in FORMATS.values():
        if fmt.detect(path):
            return fmt.load(path)
    raise WeightsError(f"{path}: unknown weights format; expected one of: {', '.join(FORMATS)}")


def write_weights(weights: Mapping[str, Any], path: str | os.PathLike[str], *, format: str | None = None) -> Path:  # noqa: A002
    """Writes a flat weights dict; the format is ``format`` or the one whose suffix ``path`` has."""
    path = Path(path)
    if format is not None:
        fmt = _format_named(format)
    else:
        found = [f for f in FORMATS.values() if f.suffix == path.suffix]
        if not found:
            kinds = ", ".join(f"'{f.suffix}' ({f.name})" if f.suffix else f"a folder ({f.name})" for f in FORMATS.values())
            raise WeightsError(f"cannot tell the weights format of {path} from its name; use {kinds}, or pass format=")
        fmt = found[0]
    fmt.save(weights, path)
    return path


def save_weights(model_or_weights: Any, path: str | os.PathLike[str], *, format: str | None = None) -> Path:  # noqa: A002
    """Writes every non-RNG variable of a model (or a flat weights dict) to ``path``.

    ``.npz`` is an npz file; a path without a suffix is an orbax checkpoint folder.
    """
    if isinstance(model_or_weights, Mapping):
        weights = model_or_weights
    else:
        from ..fastpath import flat_weights

        weights = flat_weights(model_or_weights)
    return write_weights(weights, path, format=format)


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
            problems.append(f"variable '{k}' has shape {tuple(arr.shape)} in {source}, the model needs {tuple(var.shape)}")
        elif not np.can_cast(arr.dtype, np.dtype(var.dtype), casting="same_kind"):
            problems.append(f"variable '{k}' has dtype {arr.dtype} in {source}, the model needs {np.dtype(var.dtype)}")
    for k in weights:
        if k not in variables and k not in rng_keys:
            problems.append(f"'{k}' in {source} is not a variable of the model{did_you_mean(k, variables)}")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise WeightsError(f"{source} does not fit the model: " + "; ".join(problems[:3]) + more)
    for k, var in variables.items():
        var.set_value(jnp.asarray(weights[k], dtype=var.dtype))


def load_weights(model: Any, path: str | os.PathLike[str], *, format: str | None = None) -> Any:  # noqa: A002
    """Loads a weights file into a built module (changed in place) and returns the module.

    :func:`nnx_build.load_weights` also takes a spec, built first.

    Raises:
      WeightsError: unreadable file, or a variable missing, unknown, of another shape or dtype.
    """
    apply_weights(model, read_weights(path, format=format), source=str(path))
    return model
