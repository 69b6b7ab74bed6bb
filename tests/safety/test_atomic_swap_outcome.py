"""``replace_dir`` (``export --force``) judged by outcome: interrupted at every step, never a mix.

Every call ``replace_dir`` makes that touches the file system (the exchange, each rename,
the temporary name for the old folder, the deletion of the old folder) is counted; the
replacement is then run again and again, interrupted at call 0, 1, 2, ... until a run
completes. An interruption is either a crash (``Killed``, a ``BaseException`` no handler
catches, like a SIGKILL: the call does not happen and nothing after it runs; a deletion
is killed after removing one file) or a failure (the call raises ``OSError`` and the
function's own handlers run). After each one the target path must hold the complete old
folder or the complete new one (same files, same bytes), never nothing and never a mix;
on the fallback path (no exchange), a kill between its two renames leaves the complete old
folder aside, and the next export puts it back first.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from nnx_build import fileio

OLD = {"manifest.json": b'{"version": "old"}', "stablehlo/model.mlirbc": b"old module" * 50, "only_old.txt": b"o"}
NEW = {"manifest.json": b'{"version": "new"}', "stablehlo/model.mlirbc": b"new module" * 70, "onnx/model.onnx": b"n" * 9}


class Killed(BaseException):
    """The process died here: no ``except`` clause runs."""


def write_tree(folder: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)


def tree(folder: Path) -> dict[str, str] | None:
    if not folder.is_dir():
        return None
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def hashes(files: dict[str, bytes]) -> dict[str, str]:
    return {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}


class Faults:
    """Counts the file-system steps of ``replace_dir`` and interrupts the one numbered ``at``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, at: int | None, mode: str, exchange_works: bool) -> None:
        self.at, self.mode, self.calls = at, mode, []
        real_rename, real_rmtree, real_mkdtemp = os.rename, shutil.rmtree, tempfile.mkdtemp
        real_exchange = fileio.exchange if exchange_works else (lambda a, b: False)
        real_rmdir = Path.rmdir

        def rmtree(path, *a, **k):
            try:
                interrupted = self.hit("rmtree")
            except OSError:
                if k.get("ignore_errors"):
                    return None  # what a failing rmtree(ignore_errors=True) does: leave the folder
                raise
            if interrupted:
                files = [p for p in sorted(Path(path).rglob("*")) if p.is_file()]
                if files:  # killed midway through the deletion
                    files[0].unlink()
                raise Killed
            return real_rmtree(path, *a, **k)

        def wrap(name, real):
            def step(*a, **k):
                self.hit(name)
                return real(*a, **k)
            return step

        monkeypatch.setattr(fileio.os, "rename", wrap("rename", real_rename))
        monkeypatch.setattr(fileio, "exchange", wrap("exchange", real_exchange))
        monkeypatch.setattr(fileio.shutil, "rmtree", rmtree)
        monkeypatch.setattr(fileio.tempfile, "mkdtemp", wrap("mkdtemp", real_mkdtemp))
        monkeypatch.setattr(Path, "rmdir", wrap("rmdir", real_rmdir))

    def hit(self, name: str) -> bool:
        """Records a step; interrupts it (raises) if it is the chosen one, except a killed rmtree."""
        n = len(self.calls)
        self.calls.append(name)
        if n != self.at:
            return False
        if self.mode == "fail":
            raise OSError(5, f"injected failure of {name}")
        if name == "rmtree":
            return True  # the caller deletes part of the tree, then dies
        raise Killed


def setup(base: Path) -> tuple[Path, Path]:
    out = base / "model"
    out.mkdir(parents=True)
    write_tree(out, OLD)
    tmp = fileio.make_temp_dir(out)
    write_tree(tmp, NEW)
    return tmp, out


def run(base: Path, monkeypatch: pytest.MonkeyPatch, *, at: int | None, mode: str, exchange_works: bool) -> tuple[list[str], bool]:
    tmp, out = setup(base)
    with monkeypatch.context() as m:
        faults = Faults(m, at=at, mode=mode, exchange_works=exchange_works)
        try:
            fileio.replace_dir(tmp, out, force=True)
            finished = True
        except (Killed, OSError):
            finished = False
    return faults.calls, finished


def exchange_supported(base: Path) -> bool:
    a, b = base / "probe_a", base / "probe_b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_bytes(b"a")
    ok = fileio.exchange(a, b)
    shutil.rmtree(a)
    shutil.rmtree(b)
    return ok


@pytest.mark.parametrize("mode", ["kill", "fail"])
@pytest.mark.parametrize("path", ["exchange", "fallback"])
def test_every_interruption_leaves_the_complete_old_or_the_complete_new_folder(tmp_path, monkeypatch, path, mode) -> None:
    exchange_works = path == "exchange"
    if exchange_works and not exchange_supported(tmp_path):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not available on this system or file system")
    steps, finished = run(tmp_path / "clean", monkeypatch, at=None, mode=mode, exchange_works=exchange_works)
    assert finished
    assert tree(tmp_path / "clean" / "model") == hashes(NEW)

    outcomes = []
    for at in range(len(steps) + 1):  # the last run is interrupted after its final step: it completes
        base = tmp_path / f"at{at}"
        seen, finished = run(base, monkeypatch, at=at, mode=mode, exchange_works=exchange_works)
        state = tree(base / "model")
        if state is None and not exchange_works and mode == "kill" and seen == steps[:5] == ["exchange", "mkdtemp", "rmdir", "rename", "rename"]:
            # the one window no rename can close without the exchange: killed after moving the
            # old folder aside, before moving the new one in; the old folder is complete aside,
            # and the next export (make_temp_dir) puts it back before anything else
            (aside,) = base.glob(".model.*.old")
            assert tree(aside) == hashes(OLD)
            fileio.make_temp_dir(base / "model")
            state = tree(base / "model")
        assert state in (hashes(OLD), hashes(NEW)), (
            f"interrupted ({mode}) at step {at} ({seen[-1] if at < len(seen) else 'after the last'}): "
            f"the target holds {'nothing' if state is None else sorted(state)}"
        )
        outcomes.append("new" if state == hashes(NEW) else "old")
        if finished:
            assert state == hashes(NEW)
        if mode == "fail" and not finished:
            assert state == hashes(OLD)  # a failed replacement reports an error and leaves the old export
        leftovers = [p.name for p in base.iterdir() if p.name != "model"]
        assert all(n.startswith(".model.") and n.endswith((".tmp", ".old", ".del")) for n in leftovers), leftovers
    assert outcomes[0] == "old" and outcomes[-1] == "new"
    expected = (["exchange", "rmtree"] if exchange_works
                else ["exchange", "mkdtemp", "rmdir", "rename", "rename", "rename", "rmtree"])
    assert steps == expected, steps  # the steps interrupted above were all the steps there are


def dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_the_next_export_sweeps_what_killed_runs_left_and_nothing_else(tmp_path) -> None:
    out = tmp_path / "model"
    out.mkdir()
    write_tree(out, OLD)
    dead, alive = dead_pid(), os.getpid()
    names = {
        f".model.{dead}.abc123_x.tmp": False,  # a killed run's: deleted
        ".model.k9x2_qq.del": False,  # an old folder a killed run was deleting: deleted
        f".model.{alive}.def456xy.tmp": True,  # a running export's
        ".model.ghi789zz.tmp": True,  # no process id: kept
        f".model.v2.{dead}.abc123_x.tmp": True,  # another export's (model.v2)
        ".model.v2.k9x2_qq.del": True,
        ".model.k9x2_qq.old": False,  # a replaced old folder (out exists: the replacement was killed after moving the new one in)
    }
    for name in names:
        write_tree(tmp_path / name, {"f": b"x"})
    tmp = fileio.make_temp_dir(out)
    assert tmp.name.startswith(f".model.{alive}.") and tmp.name.endswith(".tmp")
    kept = {name: (tmp_path / name).is_dir() for name in names}
    assert kept == names
    assert tree(out) == hashes(OLD)


def test_an_old_folder_is_put_back_only_for_its_own_export(tmp_path) -> None:
    write_tree(tmp_path / ".model.v2.k9x2_qq.old", NEW)  # model.v2's, killed while replacing
    fileio.make_temp_dir(tmp_path / "model")
    assert not (tmp_path / "model").exists()
    fileio.make_temp_dir(tmp_path / "model.v2")
    assert tree(tmp_path / "model.v2") == hashes(NEW)


KILL_AT_STEP = """
import os, shutil, signal, sys, tempfile
from pathlib import Path
from nnx_build import fileio

at, exchange_works, tmp, out = int(sys.argv[1]), sys.argv[2] == "1", Path(sys.argv[3]), Path(sys.argv[4])
calls = [0]

def step(real):
    def call(*a, **k):
        calls[0] += 1
        if calls[0] - 1 == at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*a, **k)
    return call

fileio.os.rename = step(os.rename)
fileio.exchange = step(fileio.exchange if exchange_works else (lambda a, b: False))
fileio.shutil.rmtree = step(shutil.rmtree)
fileio.tempfile.mkdtemp = step(tempfile.mkdtemp)
fileio.replace_dir(tmp, out, force=True)
print(calls[0])
"""


@pytest.mark.parametrize("path", ["exchange", "fallback"])
def test_sigkill_at_every_step_leaves_the_complete_old_or_the_complete_new_folder(tmp_path, path) -> None:
    """The same in a real process, SIGKILLed just before each step (so no handler, no ``finally``)."""
    import signal
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    exchange_works = path == "exchange"
    if exchange_works and not exchange_supported(tmp_path):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not available on this system or file system")
    at, killed = 0, []
    while True:
        base = tmp_path / f"at{at}"
        tmp, out = setup(base)
        proc = subprocess.run([sys.executable, "-c", KILL_AT_STEP, str(at), str(int(exchange_works)), str(tmp), str(out)],
                              capture_output=True, text=True, cwd=root, timeout=60)
        if proc.returncode == -signal.SIGKILL:
            killed.append(at)
            if tree(out) is None and not exchange_works:  # the fallback's window: put back by the next export
                fileio.make_temp_dir(out)
                assert tree(out) == hashes(OLD), f"killed at step {at}: the old folder was not put back"
            assert tree(out) in (hashes(OLD), hashes(NEW)), f"killed at step {at}: {tree(out)}"
            at += 1
            continue
        assert proc.returncode == 0, proc.stderr
        assert int(proc.stdout) == at  # completed: every step was killed once before
        assert tree(out) == hashes(NEW)
        break
    assert killed == list(range(2 if exchange_works else 6))
