"""Spec -> eager ``nnx.Module``: compile, check abstractly, then build.

Thin faces of :mod:`nnx_build.pipeline`: each takes the same keyword arguments as the
fields of :class:`nnx_build.pipeline.Options`, or an ``options=`` object.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from flax import nnx

from .. import pipeline
from ..loader import Limits
from ..pipeline import Options
from ..schemas.spec import Spec
from ..weights import load_weights as _load_into
from .abstract import Report
from .module import BuiltModule
from .program import Program

__all__ = ["BuiltModule", "Report", "build", "check", "compile", "load_weights"]


def compile(  # noqa: A001
    spec: Spec | str | os.PathLike[str], *, limits: Limits | None = None, options: Options | None = None
) -> Program:
    """Resolves a spec into a program; raises ``SpecErrors`` with every problem.

    ``limits`` bounds the document (size, nodes, depth, strings) and the module
    instances it unrolls to; see :class:`nnx_build.loader.Limits`.
    """
    return pipeline.compile(spec, pipeline.make_options(options, limits=limits))


def check(
    spec: Spec | str | os.PathLike[str],
    *,
    max_params: int | None = None,
    max_bytes: int | None = None,
    limits: Limits | None = None,
    plugins: Iterable[str] | None = None,
    options: Options | None = None,
) -> Report:
    """Validates a spec abstractly: no weight is allocated.

    Returns:
      a :class:`Report` with parameter counts by kind, bytes, per-step shapes.
    Raises:
      SpecErrors: schema, reference, shape and budget problems, all located; then
        the problems of the ``train:`` and ``tests:`` sections (see
        :func:`nnx_build.pipeline.check_sections`).
    """
    opts = pipeline.make_options(options, max_params=max_params, max_bytes=max_bytes, limits=limits, plugins=plugins)
    program = pipeline.compile(spec, opts)
    report = pipeline.check(program, opts)
    pipeline.check_sections(program)
    return report


def build(
    spec: Spec | str | os.PathLike[str],
    *,
    weights: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    rngs: nnx.Rngs | None = None,
    max_params: int | None = None,
    max_bytes: int | None = None,
    limits: Limits | None = None,
    plugins: Iterable[str] | None = None,
    check: bool = True,
    options: Options | None = None,
) -> BuiltModule:
    """Builds the eager Flax NNX module a spec describes.

    Args:
      spec: a :class:`Spec`, a path, or spec text.
      weights: a weights file to load (``.npz`` written by :func:`nnx_build.save_weights`,
        or an ``nnx-build train --out`` checkpoint directory); names and shapes are checked.
      seed: overrides the spec's ``seed``.
      rngs: an ``nnx.Rngs`` to draw from instead (wins over ``seed``).
      max_params: refuse to build past this many parameters (checked abstractly).
      max_bytes: refuse to build past this many bytes of variables and example inputs.
      limits: bounds on the spec document and on the modules it unrolls to.
      plugins: modules to import first (they register layers).
      check: run the abstract check first (shape errors located at their step).
      options: a :class:`nnx_build.pipeline.Options`; the keyword arguments above override it.

    Returns:
      an ``nnx.Module``: call it, call its methods, split it, train it.
    Raises:
      SpecErrors, WeightsError, OutOfMemoryError (all :class:`~nnx_build.NnxBuildError`).

    Example:
      >>> model = build("format: 1\\nname: m\\ninputs: {x: [batch, 2]}\\nlayers:\\n"
      ...               "  - linear: {type: Linear, in_features: 2, out_features: 3}\\n")
      >>> model.linear.kernel.shape
      (2, 3)
    """
    opts = pipeline.make_options(
        options, weights=weights, seed=seed, max_params=max_params, max_bytes=max_bytes, limits=limits, plugins=plugins
    )
    return pipeline.build(spec, opts, rngs=rngs, check_first=check).model


def load_weights(
    model_or_spec: nnx.Module | Spec | str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    format: str | None = None,  # noqa: A002
    **build_kwargs: Any,
) -> nnx.Module:
    """Loads a weights file into a built module, or into a fresh build of a spec; returns the module.

    Args:
      model_or_spec: an ``nnx.Module`` (changed in place), or a spec (path, text,
        :class:`Spec`) built first with ``build_kwargs`` (those of :func:`build`).
      path: a ``.safetensors`` file (or sharded index, or folder), an ``.npz``
        (:func:`nnx_build.save_weights`) or an orbax checkpoint folder; into a spec,
        through its ``weights:`` mapping if it has one.
      format: a name in :data:`nnx_build.weights.FORMATS`; default: detected from ``path``.
    Raises:
      WeightsError: unreadable file, or a variable missing, unknown, of another shape or
        dtype (one line naming the file and the variable); nothing is changed then.
    """
    if isinstance(model_or_spec, nnx.Module):
        if build_kwargs:
            raise TypeError(f"load_weights into a built module takes no build arguments ({', '.join(build_kwargs)})")
        _load_into(model_or_spec, path, format=format)
        return model_or_spec
    if format is None:  # through the pipeline: the spec's weights: mapping applies
        return build(model_or_spec, weights=path, **build_kwargs)
    model = build(model_or_spec, **build_kwargs)
    _load_into(model, path, format=format)
    return model
