"""``nnx-build export`` and ``nnx-build verify``: StableHLO, SavedModel and ONNX, checked against JAX."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .app import app
from .options import BuildArgs, SpecArg, build_options, console, lazy_help_option

__all__ = ["export_cmd", "verify_cmd"]


def _targets_help() -> str:
    from ..exporters.targets import TARGETS

    return f"Targets, comma-separated: {', '.join(TARGETS)}."


ToOpt = Annotated[str | None, lazy_help_option("--to", help_text=_targets_help, show_default="every target")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Folder to create (written beside, renamed when complete).")]
WEIGHTS_HELP = "Weights to export: an .npz of the pure-dict state (keys 'linear/kernel') or a train checkpoint folder."
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing output folder.")]
VerifyOpt = Annotated[bool, typer.Option("--verify/--no-verify", help="Reload every artifact in a fresh process and compare with JAX.")]


def _platforms(value: str) -> str:
    for name in value.split(","):
        if name.strip().lower() in ("gpu", "nvidia"):
            raise typer.BadParameter(f"unknown platform '{name.strip()}' (did you mean 'cuda'? for AMD GPUs 'rocm'); choose from cpu, cuda, rocm, tpu")
    return value


PlatformsOpt = Annotated[
    str, typer.Option("--platforms", callback=_platforms, help="Lowering platforms, comma-separated: cpu, cuda, rocm, tpu.")
]
SEED_HELP = "Override the spec's seed (random weights)."
TolOpt = Annotated[float | None, typer.Option("--tolerance", min=0.0, help="Abs and rel tolerance for float outputs [default: 1e-5 for float32].")]
BatchOpt = Annotated[str, typer.Option("--batch-sizes", help="Batch sizes to verify, comma-separated.")]
ArgsOpt = Annotated[
    bool, typer.Option("--weights-as-args", help="StableHLO: keep weights as @main arguments, weights.npz beside (large models).")
]
MlirTextOpt = Annotated[
    bool, typer.Option("--mlir-text", help="StableHLO: write NAME.mlir text (readable, about 2x the weights) instead of NAME.mlirbc bytecode.")
]
VersionOpt = Annotated[int, typer.Option("--version", help="SavedModel version folder (TF Serving layout).")]
DimsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--dims",
        metavar="NAME=SIZE,...",
        help=(
            "Fix named dims to concrete sizes in every target, e.g. batch=1,seq=128 (static shapes; verified at those sizes). "
            "Repeat for several static variants in one folder (--dims batch=1 --dims batch=8): entries main_batch1, main_batch8."
        ),
        show_default=False,
    ),
]


def _runtimes_help() -> str:
    from ..exporters.verify import RUNTIMES

    listed = "; ".join(f"{name}: {rt.summary}, needs pip install 'nnx-build[{rt.extra}]'" for name, rt in RUNTIMES.items())
    return f"Also run the artifacts on this runtime and compare with JAX ({listed}). Repeatable."


VerifyWithOpt = Annotated[list[str] | None, lazy_help_option("--verify-with", help_text=_runtimes_help, metavar="RUNTIME", show_default=False)]
RuntimeOpt = Annotated[list[str] | None, lazy_help_option("--runtime", help_text=_runtimes_help, metavar="RUNTIME", show_default=False)]


def _dims(values: list[str] | None) -> dict[str, int] | list[dict[str, int]] | None:
    """``["batch=1,seq=128"]`` as ``{"batch": 1, "seq": 128}``; several values as a list of variants."""
    if not values:
        return None
    if len(values) > 1:
        return [_one_dims(v) for v in values]
    return _one_dims(values[0])


def _one_dims(value: str) -> dict[str, int]:
    from ..exporters.errors import ExportError

    dims: dict[str, int] = {}
    for item in (s.strip() for s in value.split(",")):
        name, eq, size = (p.strip() for p in item.partition("="))
        if not item:
            continue
        if not eq or not name or not size.isdigit() or int(size) < 1:
            raise ExportError(f"--dims takes NAME=SIZE pairs separated by commas (batch=1,seq=128), received '{item}'")
        if name in dims:
            raise ExportError(f"--dims gives '{name}' twice")
        dims[name] = int(size)
    if not dims:
        raise ExportError(f"--dims takes NAME=SIZE pairs separated by commas (batch=1,seq=128), received '{value}'")
    return dims


def _batch_sizes(text: str) -> tuple[int, ...]:
    from ..exporters.errors import ExportError

    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ExportError(f"--batch-sizes takes integers separated by commas, received '{text}'") from None
    if not sizes or any(s < 1 for s in sizes):
        raise ExportError(f"--batch-sizes takes positive integers, received '{text}'")
    return sizes


def _print_files(console: Any, result: Any, title: str) -> None:
    from rich.table import Table

    from ..text import human_bytes

    table = Table(title=title, title_justify="left", show_footer=True)
    table.add_column("file", footer="total")
    table.add_column("size", justify="right", footer=human_bytes(sum(f["size"] for f in result.files)))
    table.add_column("sha256", style="dim")
    for f in result.files:
        table.add_row(f["path"], human_bytes(f["size"]), f["sha256"][:16])
    console.print(table)
    ver = result.verification
    if ver.get("status") == "passed":
        worst = max((r["max_abs_err"] for r in ver["results"]), default=0.0)
        targets = sorted({r["target"] for r in ver["results"]})
        sizes = [dict(t) for t in dict.fromkeys(tuple(r.get("dims", {}).items()) for r in ver["results"])]
        where = "; ".join(", ".join(f"{d}={n}" for d, n in s.items()) for s in sizes if s) or "fixed shapes"
        console.print(f"verified {', '.join(targets)} at {where}: {len(ver['results'])} comparisons, max abs err {worst:.3g}")
    elif ver.get("status") == "skipped":
        console.print("verification skipped (--no-verify)")


@app.command("export")
@build_options(seed=SEED_HELP, weights=WEIGHTS_HELP)
def export_cmd(
    spec: SpecArg,
    out: OutOpt,
    to: ToOpt = None,
    force: ForceOpt = False,
    verify: VerifyOpt = True,
    platforms: PlatformsOpt = "cpu",
    tolerance: TolOpt = None,
    batch_sizes: BatchOpt = "1,7",
    weights_as_args: ArgsOpt = False,
    mlir_text: MlirTextOpt = False,
    version: VersionOpt = 1,
    dims: DimsOpt = None,
    verify_with: VerifyWithOpt = None,
    *,
    build: BuildArgs,
) -> None:
    """Export SPEC to StableHLO, TF SavedModel and ONNX in OUT, verified against JAX.

    OUT gets manifest.json (spec hash, weights hashes, library versions, inputs and outputs,
    files with sha256, verification), stablehlo/, savedmodel/1/ (TF Serving) and onnx/.
    Written to a temporary folder beside OUT and renamed when complete; an existing OUT is
    kept unless --force. Verification varies every named dim and draws token ids over
    their embedding's range. --dims fixes named dims to concrete sizes (static shapes for
    compilers that refuse dynamic ones, such as IREE on depthwise convolutions); those
    dims are then verified at their fixed size only; --dims given several times exports one
    static variant of every entry each (main_batch1, main_batch8), each verified at its
    sizes. stablehlo/ holds each entry's NAME.mlirbc (a StableHLO portable artifact, MLIR
    bytecode that StableHLO compilers read; --mlir-text writes NAME.mlir text instead) and
    NAME.jax_export. --verify-with iree also compiles the StableHLO module with IREE for
    CPU and compares it with JAX. When a target fails, the error names the targets that
    succeeded and the command that exports just those.

    Examples:

      nnx-build export specs/seed/model.yaml --out build/model

      nnx-build export spec.yaml --to onnx --out build/m --weights trained.npz --force

      nnx-build export spec.yaml --to stablehlo --platforms cpu,cuda,tpu --out build/m

      nnx-build export spec.yaml --dims batch=1,seq=128 --out build/m-static

      nnx-build export spec.yaml --dims batch=1 --dims batch=8 --to stablehlo --verify-with iree --out build/m-b1-b8

      nnx-build export big.yaml --to stablehlo --weights-as-args --no-verify --out build/big

      nnx-build export spec.yaml --to stablehlo --mlir-text --out build/m-text
    """
    options = build.options()
    from ..exporters import PartialExportError, export

    try:
        result = export(
            spec, out, to=to, weights=build.weights, force=force, verify=verify, platforms=platforms, seed=build.seed,
            tolerance=tolerance, batch_sizes=_batch_sizes(batch_sizes), weights_as_args=weights_as_args, mlir_text=mlir_text,
            version=version, dims=_dims(dims), verify_with=verify_with or (), console=console(stderr=True), options=options,
        )
    except PartialExportError as e:
        if not e.succeeded:
            raise
        given = {
            "--force": force, "--no-verify": not verify, "--platforms": None if platforms == "cpu" else platforms,
            "--tolerance": tolerance, "--batch-sizes": None if batch_sizes == "1,7" else batch_sizes,
            "--weights-as-args": weights_as_args, "--mlir-text": mlir_text, "--version": None if version == 1 else version,
        }
        argv = ["nnx-build", "export", str(spec), "--out", str(out), "--to", ",".join(e.succeeded)]
        for flag, value in given.items():
            if value is True:
                argv.append(flag)
            elif value is not None and value is not False:  # 0 and 0.0 are given values
                argv += [flag, str(value)]
        for value in dims or []:
            argv += ["--dims", value]
        for value in verify_with or []:
            argv += ["--verify-with", value]
        argv += build.argv()
        reasons = "; ".join(str(x) for x in e.failed.values())
        what = "converted and verified" if verify else "converted"
        raise PartialExportError(e.failed, e.succeeded, verified=verify).with_message(
            f"{reasons}\n{', '.join(e.succeeded)} {what}; export just those with:\n  {e.command(argv)}"
        ) from None
    _print_files(console(), result, f"{result.manifest['spec']['name']} exported to {out}")


@app.command("verify")
@build_options(weights=WEIGHTS_HELP)
def verify_cmd(
    out: Annotated[Path, typer.Argument(help="An export folder (holds manifest.json).", show_default=False)],
    spec: Annotated[Path | None, typer.Option("--spec", help="Verify against this spec instead of the recorded one.")] = None,
    tolerance: TolOpt = None,
    batch_sizes: BatchOpt = "1,7",
    runtime: RuntimeOpt = None,
    *,
    build: BuildArgs,
) -> None:
    """Re-verify an export folder: reload each artifact in a fresh process, compare with JAX.

    The model is rebuilt from the spec, seed and weights recorded in OUT/manifest.json (a
    checkpoint at the recorded step); the manifest's verification record is updated. Exit
    code 2 on a mismatch, and "weights changed since export" when the recorded weights no
    longer hash as they did. --runtime iree also compiles each StableHLO entry with IREE
    for CPU (llvm-cpu) and compares it with JAX (the extra nnx-build[iree]); IREE may
    refuse dynamic shapes, then the error gives the export command with --dims.

    Examples:

      nnx-build verify build/model

      nnx-build verify build/model --runtime iree

      nnx-build verify build/model --batch-sizes 1,3,64 --tolerance 1e-4
    """
    options = build.options()
    from ..exporters import verify_dir

    result = verify_dir(
        out, spec=spec, weights=build.weights, tolerance=tolerance, batch_sizes=_batch_sizes(batch_sizes), runtimes=runtime or (),
        console=console(stderr=True), options=options,
    )
    _print_files(console(), result, f"{out}: verified")
