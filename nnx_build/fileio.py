"""Atomic file and folder writes: a reader sees the old content or the new, never half."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["atomic_write_text", "exchange", "make_temp_dir", "replace_dir", "restore_aside", "umask"]


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Writes ``text`` to a temporary file beside ``path``, flushes it, renames it in place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def umask() -> int:
    """The process umask (read without changing it for longer than one call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_temp_dir(out: Path) -> Path:
    """A new empty folder ``.NAME.*.tmp`` beside ``out``, with ordinary (umask) permissions."""
    parent = out.parent
    parent.mkdir(parents=True, exist_ok=True)
    restore_aside(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent))
    os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes it private; the result is an ordinary folder
    return tmp


def exchange(a: Path, b: Path) -> bool:
    """Swaps two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return bool(renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0)


def replace_dir(tmp: Path, out: Path, *, force: bool) -> None:
    """Renames the complete folder ``tmp`` to ``out``.

    An existing ``out`` is replaced only with ``force``: swapped with ``tmp`` in one atomic
    step where the system can (``out`` is the old folder or the new one at every instant),
    else moved aside (``.NAME.*.old``), replaced, then renamed ``.NAME.*.del`` and deleted.
    A process killed between moving the old folder aside and moving the new one in leaves
    nothing at ``out`` and the complete old folder aside: :func:`restore_aside` (run by the
    next :func:`make_temp_dir` or :func:`replace_dir`) puts it back. Raises :class:`FileExistsError` without
    ``force`` and :class:`OSError` (``out`` left as it was) when a rename fails.
    """
    restore_aside(out)
    if not (out.exists() or out.is_symlink()):
        os.rename(tmp, out)
        return
    if not force:
        raise FileExistsError(str(out))
    if out.is_dir() and not out.is_symlink() and exchange(tmp, out):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    aside.rmdir()
    os.rename(out, aside)
    try:
        os.rename(tmp, out)
    except OSError:
        os.rename(aside, out)
        raise
    doomed = aside.with_suffix(".del")  # only a complete old folder is ever named .old
    try:
        os.rename(aside, doomed)
    except OSError:  # the new folder is in place: a failed clean-up is no failed replacement
        doomed = aside
    shutil.rmtree(doomed, ignore_errors=True)


def restore_aside(out: Path) -> None:
    """Puts back the old folder a killed :func:`replace_dir` left aside, if ``out`` is missing."""
    if out.exists() or out.is_symlink() or not out.parent.is_dir():
        return
    asides = [p for p in out.parent.glob(f".{glob.escape(out.name)}.*.old") if p.is_dir() and not p.is_symlink()]
    if asides:
        newest = max(asides, key=lambda p: p.stat().st_ctime_ns)
        try:
            os.rename(newest, out)
        except OSError:
            pass  # another process got there first, or the folder is read-only: out stays as it was
