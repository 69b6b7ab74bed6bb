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
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on the last line.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Override the spec's seed.")]

_STATE: dict[str, Any] = {"debug": False}


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    _STATE["debug"] = debug


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


@app.command("build")
def build_cmd(spec: SpecArg, seed: SeedOpt = None, max_params: MaxParams = None, json_out: JsonFlag = False) -> None:
    """Build SPEC eagerly, print a model summary and run one forward pass on zeros.

    Examples:

      nnx-build specs/seed/model.yaml

      nnx-build build specs/cnn.yaml --seed 1
    """
    from .builder import compile as compile_spec
    from .builder.abstract import abstract_check
    from .builder.module import instantiate
    from .spec_io import spec_locator
    from .summary import forward_on_zeros, print_summary

    console = _console()
    program = compile_spec(spec)
    report, _ = abstract_check(program, spec_locator(program.spec), max_params=max_params)
    from flax import nnx

    with console.status(f"building {program.spec.name} ({report.total_params:,} parameters)"):
        model = instantiate(program, rngs=nnx.Rngs(program.spec.seed if seed is None else seed))
    outputs = forward_on_zeros(model, program)
    print_summary(console, report, title=f"{type(model).__name__} built from {spec}")
    for name, value in outputs.items():
        console.print(f"forward on zeros: {name} -> shape {tuple(value.shape)} {value.dtype}")
    if json_out:
        data = report.to_json()
        data["forward"] = {n: {"shape": list(v.shape), "dtype": str(v.dtype)} for n, v in outputs.items()}
        print(json.dumps(data))


@app.command("check")
def check_cmd(spec: SpecArg, max_params: MaxParams = None, json_out: JsonFlag = False) -> None:
    """Validate SPEC abstractly (no weights allocated): schema, references, shapes, budget.

    Examples:

      nnx-build check specs/zoo/gpt2_xl.yaml

      nnx-build check spec.yaml --json | tail -1 | jq .params
    """
    from .builder import check
    from .summary import print_summary

    report = check(spec, max_params=max_params)
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
        app(args=args, prog_name="nnx-build", standalone_mode=False)
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
