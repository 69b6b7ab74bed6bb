"""``nnx-build bench``: latency and throughput of a spec's forward through every runtime."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from .app import app
from .options import BuildArgs, JsonFlag, SpecArg, build_options, console, lazy_help_option

__all__ = ["bench_cmd"]

BatchOpt = Annotated[int | None, typer.Option("--batch", "-b", min=1, help="Batch size [default: the spec's dims.batch, else 1].")]


def _targets_help() -> str:
    from ..bench import bench_targets

    return f"Comma-separated: {', '.join(bench_targets())} [default: all; fast_path always runs]."


TargetsOpt = Annotated[str | None, lazy_help_option("--targets", help_text=_targets_help)]
RoundsOpt = Annotated[int, typer.Option("--rounds", min=1, help="Interleaved rounds measured (medians are over rounds).")]
WarmupOpt = Annotated[int, typer.Option("--warmup", min=0, help="Untimed calls per target before measuring.")]
MaxSecondsOpt = Annotated[float, typer.Option("--max-seconds", help="Stop measuring after this much wall time (at least 3 rounds).")]


def _fmt_ms(ms: float) -> str:
    return f"{ms * 1e3:,.1f} µs" if ms < 1 else f"{ms:,.2f} ms"


def _print_table(console: Any, result: dict[str, Any]) -> None:
    from rich.table import Table

    title = f"{result['name']}: {result['params']:,} parameters, batch {result['batch']}"
    table = Table(title=title, title_justify="left")
    table.add_column("target")
    table.add_column("latency (median)", justify="right")
    table.add_column("p10 – p90", justify="right")
    table.add_column("throughput", justify="right")
    table.add_column("× fast path", justify="right")
    table.add_column("max abs err", justify="right")
    ratios = result["latency_ratio_to_fast_path"]
    for name, r in result["results"].items():
        lat = r["latency"]
        thr = r.get("throughput_per_s")
        table.add_row(
            name,
            _fmt_ms(lat["median_ms"]),
            f"{_fmt_ms(lat['p10_ms'])} – {_fmt_ms(lat['p90_ms'])}",
            f"{thr:,.0f}/s" if thr is not None else "",
            "1" if name == "fast_path" else f"{ratios[name]:.3g}",
            f"{r['max_abs_err']:.2g}" if "max_abs_err" in r else "",
        )
    console.print(table)
    for target, msg in result["errors"].items():
        console.print(f"[yellow]{target} not timed[/yellow]: {msg}", markup=True, highlight=False)
    console.print(
        f"medians over {result['timing']['rounds']} interleaved rounds, warm-up excluded; "
        f"load average {result['machine'].get('load_avg_1m', '?')} on {result['machine']['cpus']} CPUs",
        style="dim",
    )


@app.command("bench")
@build_options(seed=True, weights=True)
def bench_cmd(
    spec: SpecArg,
    batch: BatchOpt = None,
    json_out: JsonFlag = False,
    targets: TargetsOpt = None,
    rounds: RoundsOpt = 20,
    warmup: WarmupOpt = 3,
    max_seconds: MaxSecondsOpt = 60.0,
    *,
    build: BuildArgs,
) -> None:
    """Time SPEC's forward through the fast path, nnx.jit, and each exported artifact.

    Builds the model once; exports it to StableHLO (reloaded with jax.export), a TF
    SavedModel (TensorFlow) and ONNX (onnxruntime) in a temporary folder; then times every
    target on the same inputs in interleaved rounds (A, B, C, then B, C, A, ...), warm-up
    excluded. Reports median latency, throughput, the latency ratio of each target to the
    fast path (median of per-round ratios) and each output's max abs difference from it.
    A target that cannot be exported or loaded is reported and the rest are still timed.

    Examples:

      nnx-build bench specs/seed/model.yaml --batch 32

      nnx-build bench specs/zoo/gpt2.yaml --targets fast_path,nnx_jit --rounds 10

      nnx-build bench spec.yaml --json | tail -1 | jq .latency_ratio_to_fast_path

      nnx-build bench specs/hf/all_minilm_l6_v2.yaml --weights model.safetensors --targets fast_path,onnx
    """
    from ..bench import bench_spec, bench_targets
    from ..errors import NnxBuildError

    known = bench_targets()
    chosen = list(known) if targets is None else [t.strip() for t in targets.split(",") if t.strip()]
    unknown = [t for t in chosen if t not in known]
    if unknown:
        from ..errors import did_you_mean

        raise NnxBuildError(
            f"unknown bench target '{unknown[0]}'{did_you_mean(unknown[0], known)}; choose from {', '.join(known)}"
        )
    options = build.options()
    out = console(stderr=json_out)
    with out.status(f"benchmarking {spec} ..."):
        result = bench_spec(
            spec, batch=batch, targets=chosen, rounds=rounds, warmup=warmup, max_seconds=max_seconds, options=options
        )
    _print_table(out, result)
    if json_out:
        print(json.dumps(result))
