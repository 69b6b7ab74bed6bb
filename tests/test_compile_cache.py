"""JAX's persistent compilation cache under the CLI: where it lives, on/off, a corrupt or
unusable folder (a warning, never an error), and outputs identical with and without it.

Each run is a fresh process (the cache is configured once per process, before JAX
compiles), on a tiny spec.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnx_build.compile_cache import ENV, default_dir, jax_settings, resolve, versioned_name

SPEC = """\
format: 1
name: tiny_cache
seed: 3
dims: {batch: 2}
inputs:
  x: {shape: [batch, 5], dtype: float32}
layers:
  - lin: {type: Linear, in_features: 5, out_features: 7}
  - relu
  - out: {type: Linear, in_features: 7, out_features: 3}
"""

# runs `nnx-build [options] build SPEC`; the build command's forward also saves the outputs
# of the module it built (eager and fast path) on a fixed input, inside the CLI's settings
RUN = """\
import sys, numpy as np
import nnx_build
import nnx_build.summary as summary
from nnx_build.cli import main

forward = summary.forward_on_zeros

def record(model, program):
    x = np.linspace(-2, 2, 10, dtype=np.float32).reshape(2, 5)
    np.savez(sys.argv[2], eager=np.asarray(model(x)), fast=np.asarray(nnx_build.fast_forward(model)(x)))
    return forward(model, program)

summary.forward_on_zeros = record
raise SystemExit(main(sys.argv[3:]))
"""


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "tiny_cache.yaml"
    path.write_text(SPEC, encoding="utf-8")
    return path


def _run(spec: Path, out: Path, *cli: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``nnx-build [cli...] build SPEC`` in a fresh process; the built module's outputs go to ``out``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("JAX_") and k != ENV}
    cmd = [sys.executable, "-c", RUN, str(spec), str(out), *cli, "build", str(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**base, "JAX_PLATFORMS": "cpu", **env}, cwd=cwd, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*-cache")) if folder.exists() else []


def _warnings(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if "compilation cache" in line]


def _same(a: Path, b: Path) -> None:
    with np.load(a) as x, np.load(b) as y:
        assert sorted(x.files) == sorted(y.files) == ["eager", "fast"]
        for k in x.files:
            assert x[k].tobytes() == y[k].tobytes(), k


# ---- where the cache lives (no JAX) ---------------------------------------------------------


def test_folder_by_environment() -> None:
    assert resolve(environ={ENV: "0"}) is None
    assert resolve(environ={ENV: "off", "JAX_COMPILATION_CACHE_DIR": "/j"}) is None
    assert resolve(enabled=False, environ={ENV: "/elsewhere"}) is None
    assert resolve(environ={ENV: "/elsewhere", "XDG_CACHE_HOME": "/x"}) == Path("/elsewhere")
    assert resolve(environ={"JAX_COMPILATION_CACHE_DIR": "/j", "XDG_CACHE_HOME": "/x"}) == Path("/j")
    assert resolve(environ={ENV: "1", "XDG_CACHE_HOME": "/x"}) == Path("/x/nnx-build") / versioned_name()
    assert default_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/nnx-build") / versioned_name()
    assert default_dir({}) == Path.home() / ".cache" / "nnx-build" / versioned_name()


def test_folder_is_keyed_by_both_versions() -> None:
    from importlib.metadata import version

    assert versioned_name() == f"jax-{version('jax')}-jaxlib-{version('jaxlib')}"
    assert "/" not in versioned_name() and versioned_name() == versioned_name().strip()


def test_settings_cache_small_programs_and_turn_off() -> None:
    on = jax_settings(Path("/c"))
    assert on["JAX_COMPILATION_CACHE_DIR"] == "/c" and on[ENV] == "/c"
    assert float(on["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]) == 0
    assert int(on["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"]) == -1
    off = jax_settings(None)
    assert off[ENV] == "0" and off["JAX_ENABLE_COMPILATION_CACHE"] == "false"


def test_help_creates_no_cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from nnx_build.cli import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(ENV, raising=False)
    assert main(["--help"]) == 0 and main(["build", "--help"]) == 0
    assert "--no-compile-cache" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
    # an option of the app itself, as --debug: after the spec it is a usage error naming the fix
    assert main([str(tmp_path / "spec.yaml"), "--no-compile-cache"]) == 2
    assert "--no-compile-cache goes before the spec" in capsys.readouterr().err


# ---- the CLI with the cache: fresh processes --------------------------------------------


@pytest.fixture(scope="module")
def without_cache(spec: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference outputs: JAX's cache off (its folder set, yet nothing may be written there)."""
    tmp = tmp_path_factory.mktemp("off")
    out = tmp / "out.npz"
    xdg = tmp / "xdg"
    proc = _run(spec, out, "--no-compile-cache", env={"XDG_CACHE_HOME": str(xdg), "JAX_COMPILATION_CACHE_DIR": str(tmp / "jax")})
    assert _warnings(proc) == []
    assert not xdg.exists() and not (tmp / "jax").exists()
    return out


@pytest.fixture(scope="module")
def filled(spec: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Path]]:
    """A first run with the default folder (under ``XDG_CACHE_HOME``): its outputs, the folder, the entries written."""
    tmp = tmp_path_factory.mktemp("filled")
    xdg = tmp / "xdg"
    proc = _run(spec, tmp / "out.npz", env={"XDG_CACHE_HOME": str(xdg)})
    assert _warnings(proc) == []
    folder = xdg / "nnx-build" / versioned_name()
    return tmp / "out.npz", folder, _entries(folder)


@pytest.mark.slow
def test_default_folder_is_filled_then_read_with_identical_outputs(
    spec: Path, without_cache: Path, filled: tuple[Path, Path, list[Path]], tmp_path: Path
) -> None:
    out, folder, written = filled
    assert written, "nothing was written to the default cache folder"
    assert folder.stat().st_mode & 0o077 == 0  # the owner's only: the cache is trusted code
    second = _run(spec, tmp_path / "second.npz", env={"XDG_CACHE_HOME": str(folder.parent.parent)})
    assert _warnings(second) == []
    assert _entries(folder) == written  # every program of the second run came from the cache
    _same(out, without_cache)
    _same(tmp_path / "second.npz", without_cache)


def test_env_var_turns_it_off(spec: Path, tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    env = {ENV: "0", "XDG_CACHE_HOME": str(xdg), "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax")}
    proc = _run(spec, tmp_path / "out.npz", env=env, cwd=tmp_path)
    assert _warnings(proc) == []
    assert [p.name for p in tmp_path.iterdir()] == ["out.npz"]  # no folder anywhere, not even one named 0


@pytest.mark.slow
def test_corrupt_entries_are_compiled_again_with_one_warning(spec: Path, without_cache: Path, tmp_path: Path) -> None:
    # filled in place: the folder's path is part of JAX's keys, so a copy would only miss
    folder = tmp_path / "cache"
    _run(spec, tmp_path / "fill.npz", env={ENV: str(folder)})
    entries = _entries(folder)
    assert len(entries) > 1
    for i, path in enumerate(entries):
        path.write_bytes(b"not a compiled program " * (i + 1))
    (folder / "stray-cache").write_bytes(os.urandom(64))
    proc = _run(spec, tmp_path / "out.npz", env={ENV: str(folder)})
    warned = _warnings(proc)
    assert len(warned) == 1, proc.stderr
    assert warned[0].startswith("warning: compilation cache: cannot read an entry of") and str(folder) in warned[0]
    assert "Traceback" not in proc.stderr
    _same(tmp_path / "out.npz", without_cache)


def test_unusable_folder_turns_it_off_with_one_warning(spec: Path, without_cache: Path, tmp_path: Path) -> None:
    # as root a read-only folder is still written: a file where the folder must go is not
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder must go\n", encoding="utf-8")
    folder = blocker / "cache"
    proc = _run(spec, tmp_path / "out.npz", env={ENV: str(folder)})
    warned = _warnings(proc)
    assert len(warned) == 1, proc.stderr
    assert warned[0].startswith(f"warning: compilation cache off: cannot use {folder}")
    assert blocker.read_text(encoding="utf-8").startswith("a file")
    _same(tmp_path / "out.npz", without_cache)
