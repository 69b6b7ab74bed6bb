"""JAX's persistent compilation cache, on by default for the command line.

Every ``nnx-build`` command compiles the same XLA programs again (weight initialisation,
the forward on zeros, export, verification in a fresh process). With the cache on, a
compiled program is written to a folder and read back by the next process that compiles
the same program, so a second run of a command skips most of its compile time.

Where the cache lives, in order:

- ``--no-compile-cache`` (before the sub-command) or ``NNX_BUILD_COMPILE_CACHE=0``
  (also ``off``, ``false``, ``no``): no cache.
- ``NNX_BUILD_COMPILE_CACHE=PATH``: that folder.
- ``JAX_COMPILATION_CACHE_DIR=PATH`` (JAX's own setting): that folder.
- otherwise ``$XDG_CACHE_HOME/nnx-build/jax-<jax version>-jaxlib-<jaxlib version>``
  (``~/.cache`` when ``XDG_CACHE_HOME`` is not set): one folder per pair of versions, so
  an upgrade starts a new folder and an old one can be deleted whole.

Every program is cached, however small and quick to compile
(``jax_persistent_cache_min_compile_time_secs=0``, ``jax_persistent_cache_min_entry_size_bytes=-1``):
a build compiles many programs that each take well under JAX's default threshold of one
second, and together they are most of its compile time; reading an entry back takes
milliseconds.

The settings are made as environment variables (``JAX_COMPILATION_CACHE_DIR`` and the
others), so processes the command starts (the verification of an export) use the same
folder, and JAX need not be imported to configure it (``check`` and ``--help`` stay
light). A folder that cannot be created or written turns the cache off with one line
of warning; an entry that cannot be read (a corrupt file) is compiled again, with one
line of warning. Neither is an error. JAX's keys include the folder's path (JAX keeps
its GPU autotuning cache inside it), so a copied or moved folder is read as empty.

The folder also holds ``init-weights/``: the weights a build's initialisers computed,
keyed by the program and its seed (:mod:`nnx_build.builder.init_cache`), for the next
build of the same spec and seed; ``configured`` points ``NNX_BUILD_INIT_CACHE`` at it.

The cache is trusted code: whoever can write to its folder can make the next process
run what they wrote. The default folder is created readable by its owner only; do not
point the cache at a folder others can write to.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import warnings
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

__all__ = ["ENV", "INIT_ENV", "configured", "default_dir", "dist_version", "jax_settings", "resolve", "versioned_name"]

ENV = "NNX_BUILD_COMPILE_CACHE"
INIT_ENV = "NNX_BUILD_INIT_CACHE"  # builder.init_cache reads it (not imported here: it needs JAX)
_OFF = {"0", "off", "false", "no"}
_ON = {"", "1", "on", "true", "yes"}
# jax's own messages when reading or writing an entry fails (jax._src.compiler warns them)
_JAX_CACHE_WARNING = r"Error (reading|writing) persistent compilation cache"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)[:64] or "unknown"


def dist_version(dist: str) -> str:
    """The installed version of distribution ``dist`` (``unknown`` when it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def versioned_name() -> str:
    """``jax-<jax version>-jaxlib-<jaxlib version>``: the cache folder's own name (compiled
    programs are only valid for the versions that compiled them)."""
    return f"jax-{_safe(dist_version('jax'))}-jaxlib-{_safe(dist_version('jaxlib'))}"


def default_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/nnx-build/jax-<jax>-jaxlib-<jaxlib>`` (``~/.cache`` without ``XDG_CACHE_HOME``)."""
    environ = os.environ if environ is None else environ
    base = Path(environ["XDG_CACHE_HOME"]) if environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "nnx-build" / versioned_name()


def resolve(enabled: bool = True, environ: Mapping[str, str] | None = None) -> Path | None:
    """The folder the cache uses, or ``None`` when it is off (see the module docstring for the order)."""
    environ = os.environ if environ is None else environ
    if not enabled:
        return None
    value = environ.get(ENV, "").strip()
    if value.lower() in _OFF:
        return None
    if value.lower() not in _ON:
        return Path(value).expanduser()
    if environ.get("JAX_COMPILATION_CACHE_DIR"):
        return Path(environ["JAX_COMPILATION_CACHE_DIR"]).expanduser()
    return default_dir(environ)


def jax_settings(path: Path | None) -> dict[str, str]:
    """The environment variables that point JAX at ``path`` (or turn its cache off for ``None``)."""
    if path is None:
        return {ENV: "0", "JAX_ENABLE_COMPILATION_CACHE": "false"}
    return {
        ENV: str(path),
        "JAX_ENABLE_COMPILATION_CACHE": "true",
        "JAX_COMPILATION_CACHE_DIR": str(path),
        # cache every program: a build's many small ones each compile in well under a second
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1",
    }


def _problem(path: Path) -> str | None:
    """Why ``path`` cannot hold the cache (it cannot be created or written), or None."""
    probe = path / f".nnx-build-probe-{os.getpid()}"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        return f"{type(e).__name__}: {e.strerror or e}"
    return None


def _warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr, flush=True)


def _apply(settings: Mapping[str, str], environ: MutableMapping[str, str]) -> dict[str, str | None]:
    """Sets ``settings`` in ``environ`` (and in JAX's config when JAX is already imported); returns the old values."""
    old = {k: environ.get(k) for k in settings}
    environ.update(settings)
    if "jax" in sys.modules:
        _update_jax(settings)
    return old


def _update_jax(settings: Mapping[str, str | None]) -> None:
    import jax

    parse: dict[str, Any] = {
        "JAX_ENABLE_COMPILATION_CACHE": lambda v: v != "false",
        "JAX_COMPILATION_CACHE_DIR": lambda v: v,
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": float,
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": int,
    }
    defaults = {"JAX_ENABLE_COMPILATION_CACHE": "true", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "1", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    for key, value in settings.items():
        if key in parse:
            value = defaults.get(key) if value is None else value
            jax.config.update(key.lower(), None if value is None else parse[key](value))  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def configured(enabled: bool = True, environ: MutableMapping[str, str] | None = None) -> Iterator[Path | None]:
    """The cache on (or off) while the block runs, for this process and those it starts.

    Yields the folder in use, or ``None`` when the cache is off: turned off by the caller
    or the environment, or because the folder cannot be created or written (one line of
    warning on stderr). Entries JAX cannot read are compiled again, with one line of
    warning for the first. The environment (and JAX's config) are restored afterwards.
    """
    environ = os.environ if environ is None else environ
    path = resolve(enabled, environ)
    if path is not None and (problem := _problem(path)) is not None:
        _warn(f"compilation cache off: cannot use {path} ({problem}); set {ENV}=PATH to use another folder, or {ENV}=0")
        path = None
    settings = jax_settings(path)
    # the weights the initialisers computed, beside the programs (builder.init_cache)
    settings[INIT_ENV] = "" if path is None else str(path / "init-weights")
    if path is not None and _problem(Path(settings[INIT_ENV])) is not None:
        settings[INIT_ENV] = ""
    old = _apply(settings, environ)
    try:
        with warnings.catch_warnings():
            if path is not None:
                _collapse_jax_warnings(path)
            yield path
    finally:
        for key, value in old.items():
            if value is None:
                environ.pop(key, None)
            else:
                environ[key] = value
        if "jax" in sys.modules:
            _update_jax(old)


def _collapse_jax_warnings(path: Path) -> None:
    """JAX's multi-line warning per unreadable entry becomes one line, once (inside ``catch_warnings``)."""
    shown = warnings.showwarning
    said: list[str] = []

    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        text = str(message)
        if not re.match(_JAX_CACHE_WARNING, text):
            shown(message, category, filename, lineno, file, line)
            return
        if not said:
            said.append(text)
            reason = re.sub(r"^.*? for '.*?': ", "", " ".join(text.split()))
            if text.startswith("Error reading"):
                _warn(f"compilation cache: cannot read an entry of {path} ({reason}); compiled again (delete the folder to clear it)")
            else:
                _warn(f"compilation cache: cannot write to {path} ({reason}); compiled programs are not kept")

    warnings.filterwarnings("always", message=_JAX_CACHE_WARNING, category=UserWarning)
    warnings.showwarning = show
