"""The model summary table (rich) and the forward pass on zeros."""

from __future__ import annotations

import math
from typing import Any

from .builder.abstract import Report, StepRow
from .builder.program import Program
from .text import human_bytes

__all__ = ["forward_on_zeros", "model_variable_rows", "print_summary", "summary_table"]


def model_variable_rows(program: Program) -> list[StepRow]:
    """One row per variable the spec declares at model level (``variables:``), as the table shows them."""
    import numpy as np

    rows = []
    for name, var, _ in program.root.variables:
        shape = tuple(var.shape)
        size = math.prod(shape) if all(isinstance(d, int) for d in shape) else 0
        itemsize = np.dtype(var.dtype or "float32").itemsize
        rows.append(StepRow(name, f"variable ({var.kind})", f"({', '.join(map(str, shape))})", {var.kind: size}, size * itemsize))
    return rows


def summary_table(report: Report, title: str | None = None, program: Program | None = None) -> Any:
    """A rich Table: per step (and model-level variable) its type, output shape and parameters by kind."""
    from rich.table import Table

    kinds = list(report.params) or ["Param"]
    table = Table(title=title, title_justify="left", show_footer=True)
    table.add_column("step", footer="total")
    table.add_column("type")
    table.add_column("output shape")
    for kind in kinds:
        table.add_column(kind, justify="right", footer=f"{report.params.get(kind, 0):,}")
    table.add_column("bytes", justify="right", footer=human_bytes(report.total_bytes))
    variables = model_variable_rows(program) if program is not None else []
    for row in [*variables, *report.rows]:
        cells = [f"{row.params[k]:,}" if row.params.get(k) else "" for k in kinds]
        table.add_row(row.name, row.type, row.shape, *cells, human_bytes(row.bytes) if row.bytes else "")
    return table


def print_summary(console: Any, report: Report, title: str | None = None, program: Program | None = None) -> None:
    """The table, the totals, model-level ``variables:`` (given ``program``), outputs and methods."""
    console.print(summary_table(report, title, program))
    by_kind = ", ".join(f"{v:,} {k}" for k, v in report.params.items()) or "no variables"
    console.print(f"{report.total_params:,} parameters ({by_kind}); {human_bytes(report.total_bytes)}")
    if program is not None and program.root.variables:
        rows = model_variable_rows(program)
        console.print("variables: " + ", ".join(f"{r.name} {r.shape} {r.type[len('variable ('):-1]}" for r in rows))
    for name, o in report.outputs.items():
        console.print(f"output {name}: ({', '.join(map(str, o['shape']))}) {o['dtype']}")
    if report.methods:
        console.print(f"methods: {', '.join(report.methods)}")


#: the forward on zeros runs once: LLVM's level 2 compiles it faster than the default 3
#: (only its output shapes are shown; the program's speed hardly matters for one run)
ONCE_COMPILER_OPTIONS: dict[str, str | bool | int | float] = {"xla_backend_optimization_level": 2}


def forward_on_zeros(model: Any, program: Program) -> dict[str, Any]:
    """Runs ``model`` once in eval mode on zeros, through the fast path (one compiled program,
    not one per operation); symbolic dims take ``spec.dims`` sizes (default 1). ``model`` is
    left as it was. The forward has finished when this returns (JAX dispatches
    asynchronously: a failure while it runs is raised here, not lost when the process ends)."""
    import jax
    import jax.numpy as jnp

    from .fastpath import fast_forward

    ff = fast_forward(model)
    inputs = {
        n: jnp.zeros(tuple(program.dims[d] if isinstance(d, str) else d for d in s.shape), s.dtype)
        for n, s in program.root.main.input_specs
    }
    args = tuple(inputs[n] for n in ff.input_names) if ff.input_names else tuple(inputs.values())
    out = ff.fn.lower(ff.weights, *args).compile(compiler_options=ONCE_COMPILER_OPTIONS)(ff.weights, *args)
    outs = jax.block_until_ready(out if isinstance(out, tuple) else (out,))
    return dict(zip(program.root.main.outputs, outs, strict=False))
