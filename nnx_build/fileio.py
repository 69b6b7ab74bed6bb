"""Atomic file and folder writes: a reader sees the old content or the new, never half."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["atomic_write_text", "exchange", "make_temp_dir", "replace_dir", "restore_aside", "sweep_stale", "umask"]


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
    """A new empty folder ``.NAME.PID.*.tmp`` beside ``out``, with ordinary (umask) permissions.

    First puts back an old folder a killed replacement left aside (:func:`restore_aside`)
    and deletes what killed runs left: ``.NAME.PID.*.tmp`` folders of processes that no
    longer run on this machine (POSIX only; the PID is this machine's), ``.NAME.*.del``
    folders, and ``.NAME.*.old`` folders once ``out`` exists (a replacement killed after
    moving the new folder in).
    """
    parent = out.parent
    parent.mkdir(parents=True, exist_ok=True)
    restore_aside(out)
    sweep_stale(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".tmp", dir=parent))
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
    next :func:`make_temp_dir` or :func:`replace_dir`) puts it back. Raises
    :class:`FileExistsError` without ``force`` and :class:`OSError` (``out`` left as it was)
    when a rename fails.
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


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process, say
        return True
    return True


def sweep_stale(out: Path) -> None:
    """Deletes the temporary folders killed runs left beside ``out`` (see :func:`make_temp_dir`).

    An old folder (``.NAME.*.old``) is deleted only while ``out`` is a folder, checked after
    listing: from the moment it exists until the new folder is moved in, ``out`` is missing
    (and :func:`restore_aside` puts it back), so one seen with ``out`` in place is a
    replaced folder, which a later export must not bring back.
    """
    prefix = f".{out.name}."
    for p in out.parent.glob(f"{glob.escape(prefix)}*"):
        if not p.is_dir() or p.is_symlink():
            continue
        parts = p.name[len(prefix):].split(".")  # [RANDOM, "del" or "old"] or [PID, RANDOM, "tmp"], not another NAME's
        replaced = len(parts) == 2 and parts[1] == "old" and out.is_dir() and not out.is_symlink()
        if replaced or (len(parts) == 2 and parts[1] == "del") or (
            len(parts) == 3 and parts[2] == "tmp" and parts[0].isdigit() and os.name == "posix" and not _running(int(parts[0]))
        ):
            shutil.rmtree(p, ignore_errors=True)


def restore_aside(out: Path) -> None:
    """Puts back the old folder a killed :func:`replace_dir` left aside, if ``out`` is missing."""
    if out.exists() or out.is_symlink() or not out.parent.is_dir():
        return
    prefix = f".{out.name}."
    asides = [p for p in out.parent.glob(f"{glob.escape(prefix)}*.old")
              if "." not in p.name[len(prefix):-len(".old")] and p.is_dir() and not p.is_symlink()]
    if asides:
        newest = max(asides, key=lambda p: p.stat().st_ctime_ns)
        try:
            os.rename(newest, out)
        except OSError:
            pass  # another process got there first, or the folder is read-only: out stays as it was
