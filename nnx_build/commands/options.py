"""Options the sub-commands share, and how they become one :class:`nnx_build.pipeline.Options`.

The build options (``--limit``, ``--max-params``, ``--max-bytes``, ``--plugin``,
``--plugins-from-entry-points``, ``--mesh``, and where a command takes them ``--seed`` and
``--weights``) are declared once, here. A sub-command that builds a spec takes them with
:func:`build_options`: it names one parameter ``build: BuildArgs`` where they go in its
``--help``, and receives them there as one :class:`BuildArgs`; ``build.options()`` turns
them into pipeline options and loads the plugins (when the command chooses, so its own
checks can come first)::

    @app.command("mine")
    @build_options(seed=True)
    def my_cmd(spec: SpecArg, build: BuildArgs, json_out: JsonFlag = False) -> None:
        options = build.options()

Commands import from here (and register on :data:`nnx_build.commands.app.app`); nothing
here imports a command or ``cli``. Heavy modules are imported inside functions.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from ..loader import Limits
    from ..pipeline import Options

__all__ = [
    "BUILD_OPTIONS",
    "BuildArgs",
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
    "build_options",
    "pipeline_options",
]

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

# the build options in the order --help lists them: parameter name -> (type with its flag and help, default);
# --seed and --weights come before them where a command takes them (see build_options)
_SHARED: dict[str, tuple[Any, Any]] = {
    "limit": (LimitOpt, None),
    "max_params": (MaxParams, None),
    "max_bytes": (MaxBytes, None),
    "plugin": (PluginOpt, None),
    "plugins_from_entry_points": (EntryPointsFlag, False),
    "mesh": (MeshOpt, None),
}


def _flag(annotation: Any) -> str:
    """``--limit`` of ``Annotated[..., typer.Option("--limit", ...)]`` (typer keeps the first name as the default)."""
    info = annotation.__metadata__[0]
    return str(info.default if isinstance(info.default, str) else info.param_decls[0])


# the options every sub-command that builds a spec takes (a test walks every command for them)
BUILD_OPTIONS = tuple(_flag(annotation) for annotation, _ in _SHARED.values())
# each BuildArgs field's flag, in the order --help lists them
_FLAGS = {name: _flag(annotation) for name, annotation in (("seed", SeedOpt), ("weights", WeightsOpt), *((n, a) for n, (a, _) in _SHARED.items()))}


@dataclasses.dataclass(frozen=True)
class BuildArgs:
    """The build options of one command line, as given (``None``: not given, or not taken by the command)."""

    limit: tuple[str, ...] = ()
    max_params: int | None = None
    max_bytes: int | None = None
    plugin: tuple[str, ...] = ()
    plugins_from_entry_points: bool = False
    mesh: str | None = None
    seed: int | None = None
    weights: Path | None = None

    def options(self, *, weights: str | os.PathLike[str] | None = None) -> Options:
        """These options as one pipeline ``Options`` (``weights`` in place of ``--weights``); loads the plugins."""
        return pipeline_options(
            list(self.limit), self.max_params, self.max_bytes, list(self.plugin), self.plugins_from_entry_points,
            seed=self.seed, weights=self.weights if weights is None else weights, mesh=self.mesh,
        )

    def argv(self) -> list[str]:
        """The command-line options that give these values again."""
        argv: list[str] = []
        for name, flag in _FLAGS.items():
            value = getattr(self, name)
            if isinstance(value, tuple):  # a repeatable option
                argv += [item for v in value for item in (flag, v)]
            elif isinstance(value, bool):  # a flag
                argv += [flag] if value else []
            elif value is not None:
                argv += [flag, str(value)]
        return argv


_Command = TypeVar("_Command", bound=Callable[..., Any])


def build_options(*, seed: bool | str = False, weights: bool | str = False) -> Callable[[_Command], _Command]:
    """Gives the decorated command the build options, declared here once, in place of its ``build: BuildArgs``.

    The command's signature (which typer reads) gets ``--limit``, ``--max-params``,
    ``--max-bytes``, ``--plugin``, ``--plugins-from-entry-points`` and ``--mesh`` where its
    ``build`` parameter is, after ``--seed`` (``seed=True``) and ``--weights``
    (``weights=True``); a string in place of ``True`` is that option's help in this
    command. typer calls the command with one :class:`BuildArgs` as ``build``. Put it
    under ``@app.command(...)``.
    """
    taken: dict[str, tuple[Any, Any]] = {}
    if seed:
        taken["seed"] = (SeedOpt if seed is True else Annotated[int | None, typer.Option("--seed", help=seed)], None)
    if weights:
        taken["weights"] = (WeightsOpt if weights is True else Annotated[Path | None, typer.Option("--weights", help=weights)], None)
    taken.update(_SHARED)

    def decorate(command: _Command) -> _Command:
        signature = inspect.signature(command, eval_str=True)
        params = list(signature.parameters.values())
        at = next((i for i, p in enumerate(params) if p.name == "build"), None)
        if at is None or params[at].annotation is not BuildArgs:
            raise TypeError(f"{command.__name__} takes the build options in a parameter 'build: BuildArgs'")
        clash = sorted(set(taken) & set(signature.parameters))
        if clash:
            raise TypeError(f"{command.__name__} declares {', '.join(clash)} itself; the build options declare them")
        kind = inspect.Parameter.KEYWORD_ONLY if params[at].kind is inspect.Parameter.KEYWORD_ONLY else inspect.Parameter.POSITIONAL_OR_KEYWORD
        shared = [inspect.Parameter(name, kind, annotation=annotation, default=default) for name, (annotation, default) in taken.items()]
        params[at : at + 1] = shared

        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            given = {name: kwargs.pop(name) for name in taken}
            for name in ("limit", "plugin"):
                given[name] = tuple(given[name] or ())
            return command(*args, build=BuildArgs(**given), **kwargs)

        run.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params} | {"return": signature.return_annotation}
        return run  # type: ignore[return-value]

    return decorate


def parse_limits(items: list[str] | None) -> Limits:
    """``--limit max_nodes=500000`` -> a Limits with those fields raised."""
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
