"""The ``nnx-build`` command line.

Plain functions registered on one typer app (:mod:`nnx_build.commands.app`); the options
they share live in :mod:`nnx_build.commands.options`. This module imports the commands,
never the reverse. Heavy modules (jax, flax, exporters) are imported inside the commands,
so ``nnx-build --help`` stays fast. ``main()`` maps known errors and usage errors to one
line each and exit code 2; ``--debug`` (before the sub-command) shows tracebacks.
``run()`` is the installed command: ``main()``, then :func:`exit_now`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from pathlib import Path
from typing import NoReturn

import typer

from . import commands  # noqa: F401  (registers every sub-command on the app)
from .commands.app import app
from .commands.options import console

__all__ = ["app", "exit_now", "main", "run"]

SPEC_SUFFIXES = (".yaml", ".yml", ".json")
ROOT_FLAGS = ("--debug", "--no-compile-cache")  # options of the app itself: before the sub-command


def _report_error(exc: BaseException) -> int:
    from .errors import NnxBuildError, SpecErrors

    err = console(stderr=True)
    if isinstance(exc, SpecErrors):
        for e in exc.errors:
            err.print(str(e), markup=False)
        n = len(exc.errors)
        err.print(f"{n} error{'s' if n != 1 else ''}", markup=False)
        return exc.exit_code
    if isinstance(exc, NnxBuildError):
        err.print(f"error: {exc}", markup=False)
        return exc.exit_code
    if isinstance(exc, MemoryError):  # outside the allocation stage: the same words, the same code
        err.print(f"error: out of memory: {exc or 'the machine could not allocate what was asked'}", markup=False)
        return 2
    err.print(f"error: {type(exc).__name__}: {exc}", markup=False)
    return 1


def _usage(message: str, command: str | None = None) -> int:
    """One line on stderr, exit code 2: what was wrong and where help is."""
    text = " ".join(message.split())
    if text.endswith(".") and not text.endswith("..."):  # an ellipsis in a command line stays
        text = text[:-1]
    where = f"nnx-build {command} --help" if command else "nnx-build --help"
    console(stderr=True).print(f"error: {text} (see {where})", markup=False)
    return 2


def _command_names() -> list[str]:
    return sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def _route(args: list[str]) -> list[str] | str:
    """``nnx-build SPEC`` -> ``build SPEC``; returns the arguments, or a usage error message."""
    from .errors import did_you_mean

    commands_ = _command_names()
    first = next((i for i, a in enumerate(args) if not a.startswith("-")), None)
    if first is None:
        if not args:
            return "no command given: nnx-build COMMAND ... or nnx-build SPEC; commands: " + ", ".join(commands_)
        return args
    word = args[first]
    if word in commands_:
        if flag := next((f for f in ROOT_FLAGS if f in args[first + 1 :]), None):
            return f"{flag} goes before the command: nnx-build {flag} {word} ..."
        return args
    if Path(word).suffix in SPEC_SUFFIXES or Path(word).exists():
        if flag := next((f for f in ROOT_FLAGS if f in args[first + 1 :]), None):
            return f"{flag} goes before the spec: nnx-build {flag} {word} ..."
        return [*args[:first], "build", *args[first:]]
    hint = did_you_mean(word, commands_)
    return f"'{word}' is neither a command nor a spec file (.yaml, .yml, .json){hint}; commands: {', '.join(commands_)}"


def _compile_cache(args: list[str]) -> contextlib.AbstractContextManager[object]:
    """JAX's persistent compilation cache for the command (none for help: nothing compiles)."""
    if "--help" in args or not set(args) & set(_command_names()):
        return contextlib.nullcontext()
    from .compile_cache import configured

    return configured(enabled="--no-compile-cache" not in args)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``nnx-build SPEC`` is short for ``nnx-build build SPEC``."""
    from typer.exceptions import TyperException

    args = list(sys.argv[1:] if argv is None else argv)
    routed = _route(args)
    if isinstance(routed, str):
        return _usage(routed)
    args = routed
    debug = "--debug" in args or bool(os.environ.get("NNX_BUILD_DEBUG"))
    try:
        with _compile_cache(args):
            rv = app(args=args, prog_name="nnx-build", standalone_mode=False)
    except typer.Exit as e:
        return int(e.exit_code)
    except typer.Abort:
        return 130
    except TyperException as e:  # typer's usage errors: unknown option, missing argument, bad value
        ctx = getattr(e, "ctx", None)
        name = ctx.info_name if ctx is not None and ctx.parent is not None else None
        return _usage(e.format_message() if hasattr(e, "format_message") else str(e), name)
    except Exception as e:  # noqa: BLE001  (mapped to one line; traceback with --debug)
        if debug:
            raise
        return _report_error(e)
    # without standalone mode, a `typer.Exit(code)` can come back as the return value
    return rv if isinstance(rv, int) else 0


def run() -> NoReturn:
    """The ``nnx-build`` command: :func:`main`, then :func:`exit_now` with its exit code."""
    exit_now(main())


def exit_now(code: int) -> NoReturn:
    """Ends the process the way Python's own exit does, less the interpreter's teardown.

    Threads that are not daemons are waited for, the ``atexit`` handlers run (logging,
    ``weakref.finalize``, multiprocessing, coverage) and the standard streams are flushed;
    then the process exits without freeing every object one by one. After a build, that
    teardown (millions of objects made by importing JAX and tracing a model, and the
    backend) takes about half a second.
    """
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`| head`), a closed stream
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    # under `python -m`, this file is __main__ and its app is not the one the sub-commands
    # (export, train, ...) registered on: run the package's own
    from nnx_build.cli import run as _run

    _run()
