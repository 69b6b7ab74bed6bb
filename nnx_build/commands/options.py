"""Options the sub-commands share, and how they become one :class:`nnx_build.pipeline.Options`.

A sub-command that builds a spec declares the build options with these types and turns
them into options with :func:`pipeline_options`, which also loads the plugins::

    def my_cmd(spec: SpecArg, limit: LimitOpt = None, max_params: MaxParams = None,
               max_bytes: MaxBytes = None, plugin: PluginOpt = None,
               plugins_from_entry_points: EntryPointsFlag = False, mesh: MeshOpt = None) -> None:
        options = pipeline_options(limit, max_params, max_bytes, plugin, plugins_from_entry_points, mesh=mesh)

Commands import from here (and register on :data:`nnx_build.commands.app.app`); nothing
here imports a command or ``cli``. Heavy modules are imported inside functions.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from ..loader import Limits
    from ..pipeline import Options

__all__ = [
    "BUILD_OPTIONS",
    "EntryPointsFlag",
    "JsonFlag",
    "LimitOpt",
    "MaxBytes",
    "MaxParams",
    "MeshOpt",
    "PluginOpt",
    "SeedOpt",
    "SpecArg",
    "check_seed",
    "console",
    "lazy_help_option",
    "parse_limits",
    "WeightsOpt",
    "pipeline_options",
]

# the options every sub-command that builds a spec takes (a test walks every command for them)
BUILD_OPTIONS = ("--limit", "--max-params", "--max-bytes", "--plugin", "--plugins-from-entry-points", "--mesh")

SpecArg = Annotated[Path, typer.Argument(help="Spec file (.yaml, .yml or .json).", show_default=False)]
MaxParams = Annotated[
    int | None,
    typer.Option("--max-params", min=0, help="Refuse specs with more parameters than this (checked abstractly)."),
]
MaxBytes = Annotated[
    int | None,
    typer.Option(
        "--max-bytes", min=0, help="Refuse specs needing more bytes of variables and example inputs (default 1 TiB)."
    ),
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
WeightsOpt = Annotated[
    Path | None,
    typer.Option(
        "--weights",
        help="Load these weights after building: a .safetensors file (or sharded index, or folder), an .npz "
        "(nnx_build.save_weights) or a checkpoint folder; through the spec's weights: mapping if it has one.",
    ),
]

MeshOpt = Annotated[
    str | None,
    typer.Option(
        "--mesh",
        help="Device mesh AXIS=SIZE,..., e.g. data=2,model=4 (one size may be -1: the rest), in place of the "
        "spec's mesh: axes; its rules map sharding: names onto these axes. check plans it without devices; "
        "building needs the devices (simulate N on CPU with XLA_FLAGS=--xla_force_host_platform_device_count=N).",
    ),
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Override the spec's seed.")]


def parse_limits(items: list[str] | None) -> Limits:
    """``--limit max_nodes=500000`` -> a Limits with those fields raised."""
    import dataclasses

    from ..errors import NnxBuildError
    from ..loader import Limits

    names = [f.name for f in dataclasses.fields(Limits)]
    values: dict[str, int] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in names or not value.strip().isdigit():
            raise NnxBuildError(f"--limit takes NAME=N with NAME one of {', '.join(names)}; received {item!r}")
        values[name] = int(value)
    return Limits(**values)


def check_seed(seed: int | None) -> None:
    from ..errors import NnxBuildError

    if seed is not None and not -(2**63) <= seed < 2**63:
        raise NnxBuildError(f"--seed must fit in 64 bits, received {seed}")


def pipeline_options(
    limit: list[str] | None = None,
    max_params: int | None = None,
    max_bytes: int | None = None,
    plugin: list[str] | None = None,
    plugins_from_entry_points: bool = False,
    *,
    seed: int | None = None,
    weights: str | os.PathLike[str] | None = None,
    mesh: str | None = None,
) -> Options:
    """The command-line build options as one pipeline ``Options``; loads the plugins it names."""
    from ..pipeline import Options, setup
    from ..sharding import parse_mesh

    check_seed(seed)
    options = Options(
        limits=parse_limits(limit),
        max_params=max_params,
        max_bytes=max_bytes,
        plugins=tuple(plugin or ()),
        entry_points=plugins_from_entry_points,
        seed=seed,
        weights=weights,
        mesh=parse_mesh(mesh) if mesh is not None else None,
    )
    setup(options)
    return options


def console(stderr: bool = False) -> Any:
    """A rich Console as every command prints: no highlighting, no emoji codes (`spec.yaml:100:5`), long lines kept whole."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True, emoji=False)


class LazyHelpOption(typer.models.OptionInfo):
    """An option whose help is computed when the help is shown, so ``--help`` lists a table
    (export targets, bench targets) without importing it before."""

    help_text: Callable[[], str]

    @property
    def help(self) -> str:
        return self.help_text()

    @help.setter
    def help(self, value: Any) -> None:
        pass


def lazy_help_option(*names: str, help_text: Callable[[], str], **kwargs: Any) -> Any:
    """``typer.Option(*names, **kwargs)`` whose help is ``help_text()``, called when shown."""
    option = typer.Option(*names, **kwargs)
    option.__class__ = LazyHelpOption
    option.help_text = help_text
    return option
