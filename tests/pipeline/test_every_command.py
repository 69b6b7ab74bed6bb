"""Every sub-command that builds a spec takes the same build options and means the same by them.

One table: each row runs every sub-command with the same options on the same spec and
expects the same outcome (the same exit code and error code), so a command that builds
its model some other way than through ``nnx_build.pipeline`` shows up as a failing cell.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nnx_build.cli import main

# 4*3 + 3 = 15 Params; its doc string is over the default max_string (64 KiB)
LONG_DOC = "x" * 70_000
SPEC = f"""\
format: 1
name: tiny
doc: "{LONG_DOC}"
seed: 0
inputs: {{x: [batch, 4]}}
layers:
  - out: {{type: Linear, in_features: 4, out_features: 3}}
train:
  loss: mean_squared_error
  optimizer: {{type: sgd, learning_rate: 0.1}}
  batch_size: 8
  epochs: 1
  eval_split: 0.25
tests:
  - name: counts
    params: {{Param: 15}}
  - name: forward
    inputs: {{x: [2, 4]}}
    outputs: {{out: {{shape: [2, 3], dtype: float32}}}}
"""
RAISE = ["--limit", "max_string=100000"]
PLUGIN_SOURCE = "LOADED = True\n"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("every_command")
    spec = root / "tiny.yaml"
    spec.write_text(SPEC)
    rng = np.random.default_rng(0)
    data = root / "data.npz"
    np.savez(data, x=rng.standard_normal((32, 4)).astype(np.float32), y=rng.standard_normal((32, 3)).astype(np.float32))
    (root / "tiny_plugin_for_tests.py").write_text(PLUGIN_SOURCE)
    exported = root / "exported"
    code = main(["export", str(spec), "--out", str(exported), "--to", "stablehlo", "--no-verify", *RAISE])
    assert code == 0, "the export that verify re-checks could not be written"
    return {"root": root, "spec": spec, "data": data, "exported": exported}


def _argv(command: str, w: dict[str, Path], tmp: Path) -> list[str]:
    spec = str(w["spec"])
    return {
        "build": ["build", spec],
        "check": ["check", spec],
        "export": ["export", spec, "--out", str(tmp / "out"), "--to", "stablehlo", "--no-verify"],
        "verify": ["verify", str(w["exported"]), "--batch-sizes", "2"],
        "train": ["train", spec, "--data", str(w["data"]), "--no-progress"],
        "test": ["test", spec],
        "bench": ["bench", spec, "--targets", "fast_path", "--rounds", "3", "--warmup", "0", "--max-seconds", "1"],
    }[command]


COMMANDS = ["build", "check", "export", "verify", "train", "test", "bench"]
# a spec refused by a limit or budget exits 2 from every command, with the same error
# code and message everywhere
REFUSED = dict.fromkeys(COMMANDS, 2)

ROWS = [
    # (row id, extra options, expected exit codes, text expected in the output)
    ("max-params refuses", [*RAISE, "--max-params", "10"], REFUSED, "error[too-many-params]"),
    ("max-bytes refuses", [*RAISE, "--max-bytes", "20"], REFUSED, "error[too-many-bytes]"),
    ("default limits refuse", [], REFUSED, "error[too-long-string]"),
    ("unknown plugin refuses", [*RAISE, "--plugin", "no_such_plugin_module_xyz"], dict.fromkeys(COMMANDS, 2),
     "cannot import plugin 'no_such_plugin_module_xyz'"),
    ("raised limits and budgets accept", [*RAISE, "--max-params", "15", "--max-bytes", "100000",
                                          "--plugin", "tiny_plugin_for_tests"], dict.fromkeys(COMMANDS, 0), ""),
]


@pytest.mark.slow
@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
@pytest.mark.parametrize("command", COMMANDS)
def test_same_options_same_outcome(
    command: str, row: tuple, work: dict[str, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, extra, codes, text = row
    monkeypatch.syspath_prepend(str(work["root"]))
    code = main([*_argv(command, work, tmp_path), *extra])
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert code == codes[command], out[-2000:]
    assert text in out
    assert "Traceback" not in out


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "check"])  # check allocates nothing
def test_out_of_memory_is_reported_the_same_way(
    command: str, work: dict[str, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    import nnx_build.builder.allocation as allocation  # where allocate looks instantiate_compiled up

    def no_memory(*args: object, **kwargs: object) -> None:
        raise MemoryError("cannot allocate 60 bytes")

    monkeypatch.setattr(allocation, "instantiate_compiled", no_memory)
    code = main([*_argv(command, work, tmp_path), *RAISE])
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert code == REFUSED[command], out[-2000:]
    assert "out of memory allocating the weights of 'tiny'" in out
    assert "MemoryError" not in out and "Traceback" not in out


def test_every_building_command_declares_the_build_options() -> None:
    import typer

    from nnx_build.cli import app
    from nnx_build.commands.options import BUILD_OPTIONS

    group = typer.main.get_command(app)
    # view serves an exported file, launch runs another command (which takes them): neither builds
    not_building = {"schema", "view", "launch"}
    building = set(group.commands) - not_building  # type: ignore[attr-defined]
    assert set(COMMANDS) <= building
    for name in sorted(building):
        declared = {o for p in group.commands[name].params for o in p.opts}  # type: ignore[attr-defined]
        missing = [o for o in BUILD_OPTIONS if o not in declared]
        assert not missing, f"nnx-build {name} does not take {', '.join(missing)}"
