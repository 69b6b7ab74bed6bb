"""The abstract build: shapes, parameter counts and shape errors before any allocation.

The constructor is traced (:func:`~.init_trace.trace_init`): the module with
``ShapeDtypeStruct``s in place of arrays, and the program the build compiles;
``jax.eval_shape`` then runs the forward with symbolic dims (``batch``), recording
every step's output shape and turning failures into errors located at the step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np
from flax import nnx

from ..errors import SpecError, SpecErrors
from ..text import fmt_shape, human_bytes
from .init_trace import forget as forget_trace
from .init_trace import trace_init
from .module import CheckContext, Poison, checking
from .program import Node, Program
from .tracer_errors import cheap_tracer_errors

__all__ = ["Report", "StepRow", "abstract_check", "count_variables", "human_bytes"]

DEFAULT_MAX_PARAMS = 1_000_000_000_000  # a trillion: generous, still stops a typo'd 10**15
DEFAULT_MAX_BYTES = 2**40  # 1 TiB of variables and example inputs


@dataclass
class StepRow:
    """One line of the model summary."""

    name: str
    type: str
    shape: str
    params: dict[str, int] = field(default_factory=dict)
    bytes: int = 0


@dataclass
class Report:
    """What the abstract build knows: totals by kind, bytes, per-step rows, outputs."""

    name: str
    params: dict[str, int]
    total_bytes: int
    rows: list[StepRow]
    inputs: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
    methods: list[str]
    per_device: dict[str, Any] | None = None  # with a mesh: {"devices", "bytes"[, "with_optimizer_bytes"]}

    @property
    def total_params(self) -> int:
        return sum(self.params.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "params": self.params,
            "total_params": self.total_params,
            "total_bytes": self.total_bytes,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "methods": self.methods,
            "steps": [
                {"name": r.name, "type": r.type, "shape": r.shape, "params": r.params, "bytes": r.bytes} for r in self.rows
            ],
            **({"per_device": self.per_device} if self.per_device is not None else {}),
        }


def count_variables(node: Any) -> tuple[dict[str, int], int]:
    """Counts elements of every variable under ``node`` by kind (RNG state excluded)."""
    counts: dict[str, int] = {}
    nbytes = 0
    for _, var in nnx.to_flat_state(nnx.state(node)):
        if isinstance(var, nnx.RngState):
            continue
        value = var.get_value()
        size = math.prod(value.shape)
        kind = type(var).__name__
        counts[kind] = counts.get(kind, 0) + size
        nbytes += size * np.dtype(value.dtype).itemsize
    return counts, nbytes


def _fmt_shape(tree: Any) -> str:
    leaves = jax.tree.leaves(tree)
    parts = [fmt_shape(leaf.shape) for leaf in leaves]
    return parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"


def _input_structs(program: Program, symbolic: bool) -> dict[str, Any]:
    specs = dict(program.root.main.input_specs)
    names = sorted(program.dims)
    if symbolic and names:
        dims = dict(zip(names, jax.export.symbolic_shape(", ".join(names)), strict=True))
    else:
        dims = dict(program.dims)
    return {
        n: jax.ShapeDtypeStruct(tuple(dims[d] if isinstance(d, str) else d for d in s.shape), np.dtype(s.dtype))
        for n, s in specs.items()
    }


def _forward(program: Program, abstract: Any, symbolic: bool, locate: Any) -> CheckContext:
    graphdef, state = nnx.split(abstract)
    structs = _input_structs(program, symbolic)

    def fwd(state: Any, inputs: dict[str, Any]) -> Any:
        model = nnx.merge(graphdef, state)
        model.eval()
        out = model(**inputs)
        return jax.tree.map(lambda v: None if isinstance(v, Poison) else v, out, is_leaf=lambda v: isinstance(v, Poison))

    with checking(locate) as ctx:
        try:
            out = jax.eval_shape(fwd, state, structs)
        except SpecError as e:  # raised from inside a transform
            ctx.errors.append(e)
            out = None
    ctx.shapes[("__outputs__",)] = out
    return ctx


def input_bytes(program: Program) -> int:
    """Bytes of the model's inputs at the example sizes of symbolic dims (``dims:``)."""
    total = 0
    for _, s in program.root.main.input_specs:
        shape = [program.dims.get(d, 1) if isinstance(d, str) else d for d in s.shape]
        total += math.prod(shape) * np.dtype(s.dtype).itemsize
    return total


def abstract_check(
    program: Program, locate: Any, *, max_params: int | None = None, max_bytes: int | None = None
) -> tuple[Report, Any]:
    """Builds ``program`` abstractly and runs its forward on symbolic shapes.

    Nothing the size of a weight is allocated: the constructor is traced
    (:func:`~.init_trace.trace_init`, kept for the build that follows) and both budgets
    are checked before the forward runs.

    Args:
      max_params: parameter budget; default the spec's ``max_params`` or a trillion.
      max_bytes: byte budget of variables plus example inputs; default the spec's
        ``max_bytes`` or 1 TiB.

    Returns:
      the report and the abstract module.
    Raises:
      SpecErrors: every construction and shape problem, or a budget overrun
        (``too-many-params``, ``too-many-bytes``).
    """
    spec = program.spec
    with checking(locate) as ctx:
        trace = trace_init(program, nnx.Rngs(spec.seed), keep=True)  # for the build that follows
    if ctx.errors:
        forget_trace()
        raise SpecErrors(ctx.errors)
    abstract = trace.abstract()
    counts, nbytes = count_variables(abstract)
    limit = max_params if max_params is not None else (
        spec.max_params if spec.max_params is not None else DEFAULT_MAX_PARAMS
    )
    total = sum(counts.values())
    if total > limit:
        raise SpecErrors(
            [
                SpecError(
                    "too-many-params",
                    f"model has {total:,} parameters ({human_bytes(nbytes)}), over the limit of {limit:,}; "
                    "raise it with --max-params or 'max_params:' in the spec",
                    locate(("max_params",) if max_params is None and spec.max_params is not None else ()),
                )
            ]
        )
    in_bytes = input_bytes(program)
    byte_limit = max_bytes if max_bytes is not None else (
        spec.max_bytes if spec.max_bytes is not None else DEFAULT_MAX_BYTES
    )
    if nbytes + in_bytes > byte_limit:
        raise SpecErrors(
            [
                SpecError(
                    "too-many-bytes",
                    f"model needs {human_bytes(nbytes + in_bytes)} ({nbytes:,} bytes of variables, "
                    f"{in_bytes:,} of example inputs), over the limit of {byte_limit:,} bytes; "
                    "raise it with --max-bytes or 'max_bytes:' in the spec",
                    locate(("max_bytes",) if max_bytes is None and spec.max_bytes is not None else ()),
                )
            ]
        )
    with cheap_tracer_errors():
        fwd = _forward(program, abstract, symbolic=True, locate=locate)
    if fwd.errors and program.dims:
        with cheap_tracer_errors():
            concrete = _forward(program, abstract, symbolic=False, locate=locate)
        if not concrete.errors:
            fwd = concrete  # a limitation of symbolic shapes, not a spec error
    if fwd.errors:
        raise SpecErrors(fwd.errors)

    rows: list[StepRow] = []
    for node in program.root.main.nodes + tuple(n for _, g in program.root.methods for n in g.nodes):
        if any(r.name == node.label for r in rows):
            continue
        rows.append(_row(node, abstract, fwd.shapes.get(node.path)))
    for node in program.root.modules:  # layers no entry point uses
        if not any(r.name == node.label for r in rows):
            rows.append(_row(node, abstract, None))
    out_tree = fwd.shapes[("__outputs__",)]
    out_names = program.root.main.outputs
    # one output is returned as itself (possibly a tuple, e.g. an RNN's (carry, outputs))
    out_leaves = (out_tree,) if len(out_names) == 1 else out_tree if isinstance(out_tree, tuple) else (out_tree,)
    outputs = {
        name + jax.tree_util.keystr(path): {
            "shape": [str(d) if not isinstance(d, int) else d for d in leaf.shape],
            "dtype": str(leaf.dtype),
        }
        for name, value in zip(out_names, out_leaves, strict=False)
        for path, leaf in jax.tree_util.tree_leaves_with_path(value)
    }
    inputs = {n: {"shape": list(s.shape), "dtype": s.dtype} for n, s in program.root.main.input_specs}
    report = Report(
        name=spec.name,
        params=dict(sorted(counts.items())),
        total_bytes=nbytes,
        rows=rows,
        inputs=inputs,
        outputs=outputs,
        methods=[m for m, _ in program.root.methods],
    )
    return report, abstract


def _row(node: Node, abstract: Any, shape: Any) -> StepRow:
    params: dict[str, int] = {}
    nbytes = 0
    if node.attr is not None:
        params, nbytes = count_variables(getattr(abstract, node.attr))
    type_name = node.type
    if node.repeat is not None:
        type_name += f" x{node.repeat}" + (" (scan)" if node.scan else "")
    return StepRow(node.label, type_name, _fmt_shape(shape) if shape is not None else "-", params, nbytes)
