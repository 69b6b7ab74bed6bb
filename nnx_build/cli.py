"""The ``nnx-build`` command line.

Plain functions registered on one typer app; heavy modules (jax, flax, exporters) are
imported inside the commands, so ``nnx-build --help`` stays fast. ``main()`` maps known
errors to one line each and exit code 2; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["app", "main"]

HELP = """Build, check and export Flax NNX models from YAML / JSON specs.

Examples:

  nnx-build specs/seed/model.yaml          # build, print a summary, run on zeros

  nnx-build check specs/zoo/gpt2_xl.yaml   # abstract check: no weight allocated

  nnx-build check spec.yaml --json         # machine-readable totals (last line)

  nnx-build export specs/cnn.yaml --to stablehlo,savedmodel,onnx --out build/cnn

  nnx-build train specs/digits_cnn.yaml --data digits.npz --out ckpt/digits

  nnx-build test specs/                    # the specs' own tests: sections

  nnx-build bench specs/seed/model.yaml    # fast path vs nnx.jit vs each artifact

  nnx-build schema --out schema/nnx-spec.schema.json
"""

app = typer.Typer(
    name="nnx-build",
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)

SpecArg = Annotated[Path, typer.Argument(help="Spec file (.yaml, .yml or .json).", show_default=False)]
MaxParams = Annotated[
    int | None, typer.Option("--max-params", help="Refuse specs with more parameters than this (checked abstractly).")
]
MaxBytes = Annotated[
    int | None,
    typer.Option("--max-bytes", help="Refuse specs needing more bytes of variables and example inputs (default 1 TiB)."),
]
LimitOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--limit",
        help="Raise a bound on the spec document, NAME=VALUE, repeatable: max_bytes, max_nodes, max_depth, "
        "max_string, max_modules.",
    ),
]
PluginOpt = Annotated[
    list[str] | None,
    typer.Option("--plugin", help="Import MODULE first (it registers layers as 'mypkg>Name'); repeatable."),
]
EntryPointsFlag = Annotated[
    bool,
    typer.Option(
        "--plugins-from-entry-points",
        help="Also load installed 'nnx_build.plugins' entry points (or set NNX_BUILD_ENTRY_POINTS=1).",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on the last line.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Override the spec's seed.")]

_STATE: dict[str, Any] = {"debug": False}


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    _STATE["debug"] = debug


def _limits(items: list[str] | None) -> Any:
    """``--limit max_nodes=500000`` -> a Limits with those fields raised."""
    import dataclasses

    from .errors import NnxBuildError
    from .loader import Limits

    names = [f.name for f in dataclasses.fields(Limits)]
    values: dict[str, int] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in names or not value.strip().isdigit():
            raise NnxBuildError(f"--limit takes NAME=N with NAME one of {', '.join(names)}; received {item!r}")
        values[name] = int(value)
    return Limits(**values)


def _setup(plugins: list[str] | None, entry_points: bool) -> None:
    """Loads the plugins the user asked for; a spec never triggers an import."""
    from .plugins import entry_points_requested, load_plugins

    load_plugins(plugins or (), entry_points=entry_points or entry_points_requested())


def _check_seed(seed: int | None) -> None:
    from .errors import NnxBuildError

    if seed is not None and not -(2**63) <= seed < 2**63:
        raise NnxBuildError(f"--seed must fit in 64 bits, received {seed}")


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


@app.command("build")
def build_cmd(
    spec: SpecArg,
    seed: SeedOpt = None,
    max_params: MaxParams = None,
    max_bytes: MaxBytes = None,
    limit: LimitOpt = None,
    plugin: PluginOpt = None,
    plugins_from_entry_points: EntryPointsFlag = False,
    json_out: JsonFlag = False,
) -> None:
    """Build SPEC eagerly, print a model summary and run one forward pass on zeros.

    Examples:

      nnx-build specs/seed/model.yaml

      nnx-build build specs/cnn.yaml --seed 1

      nnx-build build big.yaml --max-params 20000000000 --max-bytes 100000000000

      nnx-build build spec.yaml --plugin mypkg.nnx_layers
    """
    from .builder import compile as compile_spec
    from .builder.abstract import abstract_check
    from .builder.module import allocate
    from .spec_io import spec_locator
    from .summary import forward_on_zeros, print_summary

    _check_seed(seed)
    limits = _limits(limit)
    _setup(plugin, plugins_from_entry_points)
    console = _console()
    program = compile_spec(spec, limits=limits)
    report, _ = abstract_check(program, spec_locator(program.spec), max_params=max_params, max_bytes=max_bytes)
    from flax import nnx

    with console.status(f"building {program.spec.name} ({report.total_params:,} parameters)"):
        model = allocate(program, rngs=nnx.Rngs(program.spec.seed if seed is None else seed), nbytes=report.total_bytes)
    outputs = forward_on_zeros(model, program)
    print_summary(console, report, title=f"{type(model).__name__} built from {spec}")
    for name, value in outputs.items():
        console.print(f"forward on zeros: {name} -> shape {tuple(value.shape)} {value.dtype}")
    if json_out:
        data = report.to_json()
        data["forward"] = {n: {"shape": list(v.shape), "dtype": str(v.dtype)} for n, v in outputs.items()}
        print(json.dumps(data))


@app.command("check")
def check_cmd(
    spec: SpecArg,
    max_params: MaxParams = None,
    max_bytes: MaxBytes = None,
    limit: LimitOpt = None,
    plugin: PluginOpt = None,
    plugins_from_entry_points: EntryPointsFlag = False,
    json_out: JsonFlag = False,
) -> None:
    """Validate SPEC abstractly (no weights allocated): schema, references, shapes, budget.

    Examples:

      nnx-build check specs/zoo/gpt2_xl.yaml

      nnx-build check spec.yaml --json | tail -1 | jq .params

      nnx-build check huge.yaml --limit max_modules=50000 --max-bytes 4000000000000
    """
    from .builder import check
    from .summary import print_summary

    limits = _limits(limit)
    _setup(plugin, plugins_from_entry_points)
    report = check(spec, max_params=max_params, max_bytes=max_bytes, limits=limits)
    console = _console()
    if json_out:
        print(json.dumps(report.to_json()))
        return
    print_summary(console, report, title=f"{spec}: ok")


@app.command("schema")
def schema_cmd(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.")] = None,
) -> None:
    """Write the JSON Schema of specs (for editors: yaml-language-server, VS Code).

    Examples:

      nnx-build schema --out schema/nnx-spec.schema.json
    """
    from .jsonschema import spec_json_schema

    text = json.dumps(spec_json_schema(), indent=2, sort_keys=False) + "\n"
    if out is None:
        sys.stdout.write(text)
        return
    from .fileio import atomic_write_text

    atomic_write_text(out, text)
    _console().print(f"wrote {out}")


from . import commands as _commands  # noqa: E402,F401  (registers export, verify, train, ...)


def _report_error(exc: BaseException) -> int:
    from .errors import NnxBuildError, SpecErrors

    console = _console(stderr=True)
    if isinstance(exc, SpecErrors):
        for e in exc.errors:
            console.print(str(e), markup=False)
        n = len(exc.errors)
        console.print(f"{n} error{'s' if n != 1 else ''}", markup=False)
        return exc.exit_code
    if isinstance(exc, NnxBuildError):
        console.print(f"error: {exc}", markup=False)
        return exc.exit_code
    console.print(f"error: {type(exc).__name__}: {exc}", markup=False)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``nnx-build SPEC`` is short for ``nnx-build build SPEC``."""
    import click

    args = list(sys.argv[1:] if argv is None else argv)
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    first = next((i for i, a in enumerate(args) if not a.startswith("-")), None)
    if first is not None and args[first] not in commands:
        args.insert(first, "build")
    debug = "--debug" in args or bool(os.environ.get("NNX_BUILD_DEBUG"))
    try:
        rv = app(args=args, prog_name="nnx-build", standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return 2
    except click.exceptions.Abort:
        return 130
    except Exception as e:  # noqa: BLE001  (mapped to one line; traceback with --debug)
        if debug:
            raise
        return _report_error(e)
    # without standalone mode, click returns the code of a `typer.Exit(code)` instead of raising
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    # under `python -m`, this file is __main__ and its app is not the one the sub-commands
    # (export, train, ...) registered on: run the package's own
    from nnx_build.cli import main as _main

    raise SystemExit(_main())
