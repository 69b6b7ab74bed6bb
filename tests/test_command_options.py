"""The build options are declared once (``commands.options.build_options``) and every command
that builds a spec takes them from there: same flags, types, defaults and help everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from nnx_build.cli import app
from nnx_build.commands.options import BUILD_OPTIONS, BuildArgs, build_options

# commands that build no spec: view serves an exported file, launch runs another command
# (which takes the options), schema writes the JSON Schema
NOT_BUILDING = {"schema", "view", "launch"}
# the commands that take --seed or --weights as a build option (--weights means what the
# command does with it, so its help is the command's own; its flag and type are shared)
TAKES_SEED = {"build", "bench", "export"}
TAKES_WEIGHTS = {"build", "check", "bench", "export", "verify", "train", "test", "weights"}


def _reference(seed: bool = True, weights: bool = True) -> dict[str, Any]:
    """The click options ``build_options`` declares, read from a command of a fresh app."""
    probe = typer.Typer(add_completion=False)

    @probe.command()
    @build_options(seed=seed, weights=weights)
    def one(spec: Path, build: BuildArgs) -> None:
        pass

    return {p.opts[0]: p for p in typer.main.get_command(probe).params if p.opts[0].startswith("--")}


def _described(param: Any, with_help: bool = True) -> dict[str, Any]:
    return {
        "opts": tuple(param.opts),
        "type": repr(param.type_descriptor.annotation),
        "min": param.min,
        "max": param.max,
        "default": param.default,
        "multiple": param.multiple,
        "is_flag": getattr(param, "is_flag", False),
        "required": param.required,
        "help": getattr(param, "help", None) if with_help else None,
    }


def _commands() -> dict[str, Any]:
    group = typer.main.get_command(app)
    return dict(group.commands)  # type: ignore[attr-defined]


def test_every_building_command_takes_each_build_option_as_declared() -> None:
    reference = _reference()
    assert tuple(reference) == ("--seed", "--weights", *BUILD_OPTIONS)
    commands = _commands()
    building = sorted(set(commands) - NOT_BUILDING)
    assert {"build", "check", "export", "verify", "train", "test", "bench", "graph", "show", "weights"} <= set(building)
    for name in building:
        declared = {o: p for p in commands[name].params for o in p.opts}
        for flag in BUILD_OPTIONS:
            assert flag in declared, f"nnx-build {name} does not take {flag}"
            assert _described(declared[flag]) == _described(reference[flag]), f"nnx-build {name} declares {flag} its own way"


def test_seed_and_weights_are_the_shared_ones_where_taken() -> None:
    reference = _reference()
    commands = _commands()
    for name, command in commands.items():
        declared = {o: p for p in command.params for o in p.opts}
        assert ("--seed" in declared) == (name in TAKES_SEED), name
        assert ("--weights" in declared) == (name in TAKES_WEIGHTS), name
        if "--seed" in declared:
            assert _described(declared["--seed"], with_help=False) == _described(reference["--seed"], with_help=False), name
        if "--weights" in declared and name != "weights":  # weights: a required --weights of its own
            assert _described(declared["--weights"], with_help=False) == _described(reference["--weights"], with_help=False), name


def _run(argv: list[str]) -> BuildArgs:
    probe = typer.Typer(add_completion=False)
    got: list[BuildArgs] = []

    @probe.command()
    @build_options(seed=True, weights="Weights of the probe.")
    def one(spec: Path, build: BuildArgs, other: int = 0) -> None:
        assert other == 7
        got.append(build)

    result = CliRunner().invoke(probe, ["spec.yaml", "--other", "7", *argv])
    assert result.exit_code == 0, result.output
    return got[0]


def test_the_command_receives_the_options_as_one_build_args() -> None:
    argv = [
        "--seed", "3", "--weights", "w.npz", "--limit", "max_nodes=5", "--limit", "max_depth=9", "--max-params", "10",
        "--max-bytes", "20", "--plugin", "a.b", "--plugin", "c", "--plugins-from-entry-points", "--mesh", "data=2",
    ]
    expected = BuildArgs(("max_nodes=5", "max_depth=9"), 10, 20, ("a.b", "c"), True, "data=2", 3, Path("w.npz"))
    assert _run(argv) == expected
    assert _run([]) == BuildArgs()
    # argv() gives the same options back (export prints it in the command that exports the targets that worked)
    assert _run(expected.argv()) == expected
    assert sorted(expected.argv()) == sorted(argv)
    zeros = BuildArgs(max_params=0, max_bytes=0, seed=0)  # 0 is given, not left out
    assert zeros.argv() == ["--seed", "0", "--max-params", "0", "--max-bytes", "0"]
    assert _run(zeros.argv()) == zeros


def test_build_args_become_the_pipeline_options() -> None:
    from nnx_build.loader import Limits

    args = BuildArgs(("max_nodes=5",), 10, 20, (), False, "data=2,model=-1", 3, Path("w.npz"))
    options = args.options()
    assert (options.limits, options.max_params, options.max_bytes, options.seed) == (Limits(max_nodes=5), 10, 20, 3)
    assert options.mesh == (("data", 2), ("model", -1))
    assert options.weights == Path("w.npz")
    assert args.options(weights="other.npz").weights == "other.npz"


def test_a_command_without_a_build_parameter_or_with_its_own_option_is_refused() -> None:
    with pytest.raises(TypeError, match="'build: BuildArgs'"):

        @build_options()
        def no_build(spec: Path) -> None:
            pass

    with pytest.raises(TypeError, match="declares mesh itself"):

        @build_options()
        def own_mesh(spec: Path, build: BuildArgs, mesh: str | None = None) -> None:
            pass
