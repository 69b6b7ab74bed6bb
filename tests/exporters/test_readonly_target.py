"""An export into a folder the user cannot write fails in one line (exit 2) and leaves nothing.

Run as root (as in CI), a chmod'ed folder is still writable, so each case makes the
target unwritable in a way root cannot bypass either:

* a regular FILE where a parent folder must go (``--out file/sub`` and ``--out file/a/b``);
* a read-only folder (mode 0555), the export run in a subprocess that drops root
  privileges to the user ``nobody`` first (as the current user when not root).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from nnx_build.cli import main

SPEC_TEXT = """\
format: 1
name: tiny
seed: 0
inputs:
  x: [batch, 2]
layers:
  - lin: {type: Linear, in_features: 2, out_features: 3}
outputs: [lin]
"""


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _one_error_line(text: str, prefix: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert lines[0].startswith(prefix), text
    assert "Traceback" not in text
    return lines[0]


@pytest.mark.parametrize("sub", ["sub", "a/b"])
def test_a_file_where_the_parent_folder_must_go(tmp_path: Path, capsys: pytest.CaptureFixture[str], sub: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC_TEXT, encoding="utf-8")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = blocker / sub
    capsys.readouterr()
    assert main(["export", str(spec), "--out", str(out), "--to", "stablehlo", "--no-verify"]) == 2
    line = _one_error_line(capsys.readouterr().err, "error: cannot write to ")
    # the folder it names is on the way to --out, and the reason is the file in the way
    named = line[len("error: cannot write to "):].rsplit(": ", 1)[0]
    assert out.is_relative_to(named) and Path(named).is_relative_to(blocker), line
    assert line.endswith(("Not a directory", "File exists")), line
    assert _tree(tmp_path) == ["file", "spec.yaml"]
    assert blocker.read_text() == "not a folder"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder outside pytest's private tmp (mode 0700), readable by every user."""
    path = Path(tempfile.mkdtemp(prefix="nnx-ro-"))
    path.chmod(0o755)
    yield path
    for p in [path, *path.rglob("*")]:
        if p.is_dir():
            p.chmod(0o755)
    shutil.rmtree(path)


# Runs `nnx-build export` twice in one process: once into a writable folder (as the
# current user: it loads every module an export uses, since after dropping root the
# interpreter's own files may be out of reach), then, as `nobody` when started as root,
# into the read-only folder. Prints the second run's exit code and stderr as JSON.
DROP_AND_EXPORT = r"""
import io, json, os, pwd, sys
from contextlib import redirect_stderr, redirect_stdout
from nnx_build.cli import main
spec, warm, target = sys.argv[1:4]
args = ["--to", "stablehlo", "--no-verify"]
with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()) as err:
    assert main(["export", spec, "--out", warm, *args]) == 0, err.getvalue()
if os.geteuid() == 0:
    nobody = pwd.getpwnam("nobody")
    os.setgroups([])
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)
assert os.geteuid() != 0
with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()) as err:
    rc = main(["export", spec, "--out", target, *args])
print(json.dumps([rc, err.getvalue()]))
"""


def test_read_only_folder_even_as_root(shared_dir: Path, tmp_path: Path) -> None:
    spec = shared_dir / "spec.yaml"
    spec.write_text(SPEC_TEXT, encoding="utf-8")
    spec.chmod(0o644)
    ro = shared_dir / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    out = ro / "out"
    proc = subprocess.run(
        [sys.executable, "-c", DROP_AND_EXPORT, str(spec), str(tmp_path / "warm"), str(out)],
        # the dropped user cannot write the suite's compilation cache either (that is one warning line of its own)
        capture_output=True, text=True, timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu", "NNX_BUILD_COMPILE_CACHE": "0"},
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rc, err = json.loads(proc.stdout.strip().splitlines()[-1])
    assert rc == 2, err
    _one_error_line(err, f"error: cannot write to {ro}: Permission denied")
    assert list(ro.iterdir()) == []
    assert sorted(p.name for p in shared_dir.iterdir()) == ["ro", "spec.yaml"]
    assert (tmp_path / "warm" / "manifest.json").is_file()  # the same export works where it may write
