"""The model summary table (rich) and the forward pass on zeros."""

from __future__ import annotations

from typing import Any

from .builder.abstract import Report, human_bytes
from .builder.program import Program

__all__ = ["forward_on_zeros", "print_summary", "summary_table"]


def summary_table(report: Report, title: str | None = None) -> Any:
    """A rich Table: per step its type, output shape and parameters by kind."""
    from rich.table import Table

    kinds = list(report.params) or ["Param"]
    table = Table(title=title, title_justify="left", show_footer=True)
    table.add_column("step", footer="total")
    table.add_column("type")
    table.add_column("output shape")
    for kind in kinds:
        table.add_column(kind, justify="right", footer=f"{report.params.get(kind, 0):,}")
    table.add_column("bytes", justify="right", footer=human_bytes(report.total_bytes))
    for row in report.rows:
        cells = [f"{row.params[k]:,}" if row.params.get(k) else "" for k in kinds]
        table.add_row(row.name, row.type, row.shape, *cells, human_bytes(row.bytes) if row.bytes else "")
    return table


def print_summary(console: Any, report: Report, title: str | None = None) -> None:
    console.print(summary_table(report, title))
    by_kind = ", ".join(f"{v:,} {k}" for k, v in report.params.items()) or "no variables"
    console.print(f"{report.total_params:,} parameters ({by_kind}); {human_bytes(report.total_bytes)}")
    for name, o in report.outputs.items():
        console.print(f"output {name}: ({', '.join(map(str, o['shape']))}) {o['dtype']}")
    if report.methods:
        console.print(f"methods: {', '.join(report.methods)}")


def forward_on_zeros(model: Any, program: Program) -> dict[str, Any]:
    """Runs ``model`` once in eval mode on zeros; symbolic dims take ``spec.dims`` sizes (default 1)."""
    import jax.numpy as jnp

    inputs = {
        n: jnp.zeros(tuple(program.dims[d] if isinstance(d, str) else d for d in s.shape), s.dtype)
        for n, s in program.root.main.input_specs
    }
    model.eval()
    try:
        out = model(**inputs)
    finally:
        model.train()
    outs = out if isinstance(out, tuple) else (out,)
    return dict(zip(program.root.main.outputs, outs, strict=False))
