"""A real ``nnx-build export --force`` over a complete export, killed at every step of the swap.

``killer/sitecustomize.py`` is put on the child's ``PYTHONPATH``: it counts every
``os.rename``, ``os.replace``, ``shutil.rmtree`` and ``fileio.exchange`` (renameat2) call
that touches the test's folder and ends the process with ``os._exit(137)`` (no handler, no
``finally``) at call N; a killed ``rmtree`` first deletes one file. N runs 1, 2, ... until
a run completes. After each kill the target holds a complete old export (seed 1) or a
complete new one (seed 2), read from its manifest and the sha256 of every file, never
nothing and never a mix; and the next export run recovers: it puts back an old folder left
aside, deletes what the killed run left beside the target and replaces the target.

Both ways ``replace_dir`` swaps: the exchange (Linux ``renameat2``) and the fallback that
moves the old folder aside (``NNX_KILL_NO_EXCHANGE=1`` makes the exchange unsupported).
The steps before the swap (the two manifest writes) are the same on both ways and are
killed on the fallback's run only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KILLER = Path(__file__).resolve().parent / "killer"
SPEC = "format: 1\nname: tiny\ninputs:\n  x: [batch, 4]\nlayers:\n  - l: {type: Linear, in_features: 4, out_features: 3}\n"
OLD_SEED, NEW_SEED = 1, 2
KILLED = 137

pytestmark = pytest.mark.slow  # about a dozen exports in fresh processes


def export(base: Path, seed: int, *, kill_at: int | None = None, exchange: bool = True) -> tuple[int, list[str]]:
    """Runs ``nnx-build export --force`` into ``base/model``; the return code and the steps it counted."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    log = base.parent / f"{base.name}.steps"
    log.unlink(missing_ok=True)
    if kill_at is not None:
        env.update(PYTHONPATH=os.pathsep.join([str(KILLER), env.get("PYTHONPATH", "")]), NNX_KILL_ROOT=str(base),
                   NNX_KILL_AT=str(kill_at), NNX_KILL_LOG=str(log), NNX_KILL_NO_EXCHANGE="0" if exchange else "1")
    proc = subprocess.run(
        [sys.executable, "-m", "nnx_build.cli", "export", str(base.parent / "tiny.yaml"), "--to", "stablehlo",
         "--out", str(base / "model"), "--force", "--no-verify", "--seed", str(seed)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )
    assert proc.returncode in (0, KILLED), proc.stderr
    return proc.returncode, log.read_text().splitlines() if log.exists() else []


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_export(folder: Path) -> tuple[int, dict[str, str]] | None:
    """``(seed, {file: sha256})`` of a complete export; None when there is no folder.

    Complete: the manifest reads, and the files present are exactly the files it lists,
    each with the sha256 it records (a mix of two exports, or a half-deleted one, fails).
    """
    if not folder.is_dir():
        return None
    manifest = json.loads((folder / "manifest.json").read_text())
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    present = {p.relative_to(folder).as_posix(): sha256(p) for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json"}
    assert present == listed, f"{folder.name} is not one complete export: files {sorted(present)}, manifest {sorted(listed)}"
    return manifest["seed"], present


def leftovers(base: Path) -> list[str]:
    return sorted(p.name for p in base.iterdir() if p.name != "model")


@pytest.fixture(scope="module")
def old_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete export made with seed 1 (copied into each run's folder)."""
    base = tmp_path_factory.mktemp("old") / "base"
    base.mkdir()
    (base.parent / "tiny.yaml").write_text(SPEC)
    rc, _ = export(base, OLD_SEED)
    assert rc == 0
    return base / "model"


def fresh(root: Path, name: str, old_export: Path) -> Path:
    base = root / name
    base.mkdir()
    (root / "tiny.yaml").write_text(SPEC)
    shutil.copytree(old_export, base / "model")
    return base


def exchange_supported(base: Path) -> bool:
    from nnx_build import fileio

    a, b = base / "probe_a", base / "probe_b"
    a.mkdir()
    b.mkdir()
    ok = fileio.exchange(a, b)
    a.rmdir()
    b.rmdir()
    return ok


@pytest.mark.parametrize("path", ["fallback", "exchange"])
def test_export_killed_at_every_step_of_the_swap_leaves_a_complete_export_and_the_next_run_recovers(tmp_path, old_export, path) -> None:
    exchange = path == "exchange"
    if exchange and not exchange_supported(tmp_path):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not available on this system or file system")
    old = read_export(old_export)
    assert old is not None and old[0] == OLD_SEED
    # the exchange's own steps: after the two manifest writes (killed on the fallback's run)
    at = 3 if exchange else 1
    states: dict[int, tuple[int, dict[str, str]]] = {}
    recover: list[Path] = []
    while True:
        base = fresh(tmp_path, f"at{at}", old_export)
        rc, steps = export(base, NEW_SEED, kill_at=at, exchange=exchange)
        if rc == 0:
            break
        assert len(steps) == at, steps  # died at the step it was told to
        step = steps[-1]
        state = read_export(base / "model")
        if state is None:
            # the one window without the exchange: the old folder moved aside, the new one not
            # yet moved in; the old is complete aside, and the next export puts it back first
            assert not exchange and step.startswith("5 rename .model.") and step.endswith(".tmp model"), step
            (aside,) = base.glob(".model.*.old")
            assert read_export(aside) == old, "killed with the old folder aside: it is not the complete old export"
        else:
            assert state[0] in (OLD_SEED, NEW_SEED)
            states[at] = state
        assert all(n.startswith(".model.") and n.endswith((".tmp", ".old", ".del")) for n in leftovers(base)), leftovers(base)
        if leftovers(base) or state is None:
            recover.append(base)
        at += 1

    assert read_export(base / "model") is not None and leftovers(base) == []
    new = read_export(base / "model")
    assert new is not None and new[0] == NEW_SEED and new[1] != old[1]
    expected = (["exchange", "rmtree"] if exchange else
                ["replace", "replace", "exchange", "rename", "rename", "rename", "rmtree"])
    assert [s.split()[1] for s in steps[len(steps) - len(expected):]] == expected, steps
    assert at == len(steps) + 1  # every step was killed once before the run that completed
    for n, (seed, files) in states.items():
        assert (seed, files) in (old, new), f"killed at step {n}: seed {seed} with files that are not that export's"
    # a kill up to the swap (the exchange, or moving the new folder in) leaves the old export, after it the new
    swap = 3 if exchange else 5
    assert {n: s[0] for n, s in states.items()} == {n: OLD_SEED if n <= swap else NEW_SEED for n in states}

    # the next export recovers: a real one from the worst state (fallback: nothing at the
    # target; exchange: the old folder half deleted beside it), what it does first
    # (fileio.make_temp_dir: put back, sweep) from every other kill
    from nnx_build import fileio

    worst = tmp_path / f"at{swap + 1 if exchange else swap}"
    assert worst in recover
    rc, _ = export(worst, NEW_SEED)
    assert rc == 0 and read_export(worst / "model") == new
    assert leftovers(worst) == [], f"the next export left {leftovers(worst)} beside the target"
    for b in recover:
        if b != worst:
            tmp = fileio.make_temp_dir(b / "model")
            assert read_export(b / "model") in (old, new)
            assert leftovers(b) == [tmp.name], f"{b.name}: the next export leaves {leftovers(b)} beside the target"
