"""Spec -> eager ``nnx.Module``: compile, check abstractly, then build."""

from __future__ import annotations

import os
from typing import Any

from flax import nnx

from ..loader import Limits
from ..schemas.spec import Spec
from ..spec_io import load_spec, spec_locator
from .abstract import Report, abstract_check
from .module import BuiltModule, allocate, instantiate
from .program import Program, compile_spec

__all__ = ["BuiltModule", "Report", "build", "check", "compile"]


def compile(spec: Spec | str | os.PathLike[str], *, limits: Limits | None = None) -> Program:  # noqa: A001
    """Resolves a spec into a program; raises ``SpecErrors`` with every problem.

    ``limits`` bounds the document (size, nodes, depth, strings) and the module
    instances it unrolls to; see :class:`nnx_build.loader.Limits`.
    """
    limits = limits or Limits()
    spec = load_spec(spec, limits=limits)
    return compile_spec(spec, spec_locator(spec), limits)


def check(
    spec: Spec | str | os.PathLike[str],
    *,
    max_params: int | None = None,
    max_bytes: int | None = None,
    limits: Limits | None = None,
) -> Report:
    """Validates a spec abstractly: no weight is allocated.

    Returns:
      a :class:`Report` with parameter counts by kind, bytes, per-step shapes.
    Raises:
      SpecErrors: schema, reference, shape and budget problems, all located.
    """
    program = compile(spec, limits=limits)
    report, _ = abstract_check(program, spec_locator(program.spec), max_params=max_params, max_bytes=max_bytes)
    from ..training import check_train  # the train: section, as nnx-build train checks it

    check_train(program)
    return report


def build(
    spec: Spec | str | os.PathLike[str],
    *,
    seed: int | None = None,
    rngs: nnx.Rngs | None = None,
    max_params: int | None = None,
    max_bytes: int | None = None,
    limits: Limits | None = None,
    check: bool = True,
) -> BuiltModule:
    """Builds the eager Flax NNX module a spec describes.

    Args:
      spec: a :class:`Spec`, a path, or spec text.
      seed: overrides the spec's ``seed``.
      rngs: an ``nnx.Rngs`` to draw from instead (wins over ``seed``).
      max_params: refuse to build past this many parameters (checked abstractly).
      max_bytes: refuse to build past this many bytes of variables and example inputs.
      limits: bounds on the spec document and on the modules it unrolls to.
      check: run the abstract check first (shape errors located at their step).

    Returns:
      an ``nnx.Module``: call it, call its methods, split it, train it.

    Example:
      >>> model = build("format: 1\\nname: m\\ninputs: {x: [batch, 2]}\\nlayers:\\n"
      ...               "  - linear: {type: Linear, in_features: 2, out_features: 3}\\n")
      >>> model.linear.kernel.shape
      (2, 3)
    """
    program = compile(spec, limits=limits)
    nbytes = None
    if check:
        report, _ = abstract_check(program, spec_locator(program.spec), max_params=max_params, max_bytes=max_bytes)
        nbytes = report.total_bytes
    if rngs is None:
        rngs = nnx.Rngs(program.spec.seed if seed is None else seed)
    return allocate(program, rngs=rngs, nbytes=nbytes)
