"""The weights a build's initialisers computed, kept beside the compilation cache.

What the initialisers compute depends on the traced program (its jaxpr and constants),
its arguments (the RNG state: the seed), the versions of JAX, jaxlib, Flax and this
package, JAX's and XLA's settings, the compile options and the machine. The command line
(with the compilation cache on: :func:`nnx_build.compile_cache.configured`) keys the
computed weights by all of these, so a second build of the same spec with the same seed
maps them from a file instead of lowering, loading and running the programs again: the
arrays share the file's pages, read-only (a training step that donates them leaves the file as it was).

Programs that call back into Python or into foreign functions are not kept (their
results may depend on more than their inputs); nor are weights over
:data:`MAX_ENTRY_BYTES`; the folder is trimmed to :data:`MAX_FOLDER_BYTES`, the entries
used least recently first. A file that cannot be read, or does not match the program,
is ignored and computed again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..compile_cache import INIT_ENV as ENV  # the folder, set by ``configured`` (unset or empty: nothing is kept)
from ..compile_cache import dist_version

__all__ = ["ENV", "MAX_ENTRY_BYTES", "MAX_FOLDER_BYTES", "folder", "key", "load", "store"]


MAX_ENTRY_BYTES = 512 * 2**20
MAX_FOLDER_BYTES = 2 * 2**30
_ALIGN = 64  # JAX shares a read-only host array's memory when it is aligned
_SUFFIX = ".weights"
_PAGE = 4096  # the arrays start on the page after the header
# primitives whose results are not a function of the program's inputs alone
_IMPURE = ("callback", "custom_call", "ffi_call", "io_")


def folder() -> Path | None:
    """Where entries are kept, or None when the cache is off."""
    value = os.environ.get(ENV, "")
    return Path(value) if value else None


def key(closed: Any, args: Sequence[Any], compiler_options: Any) -> str | None:
    """The entry's name for ``closed`` (a ``ClosedJaxpr``) run on ``args``; None when the
    cache is off or the results may depend on more than that (callbacks, foreign functions)."""

    if folder() is None:
        return None
    text = str(closed.jaxpr)
    if any(word in text for word in _IMPURE):
        return None
    h = hashlib.sha256()
    for part in (text, repr(sorted(compiler_options.items())), _setting_text()):
        h.update(part.encode())
        h.update(b"\0")
    for value in (*closed.consts, *args):
        impl, arr = _plain(value)
        if impl is not None:
            h.update(impl.encode())
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def load(name: str, avals: Sequence[Any]) -> list[Any] | None:
    """The arrays of entry ``name``, if it is there and holds arrays of ``avals``' shapes and
    dtypes (an entry that does not is removed); else None."""
    where = folder()
    if where is None:
        return None
    path = where / f"{name}{_SUFFIX}"
    try:
        return _read(path, avals)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):  # truncated, garbled, another program's
        with contextlib.suppress(OSError):
            path.unlink()
        return None


def store(name: str, values: Sequence[Any]) -> None:
    """Writes ``values`` (computed: wait for them first, so that a failure is raised where
    it happened) as entry ``name``, atomically: a reader sees all of it or nothing; not
    when they are over :data:`MAX_ENTRY_BYTES` or the folder cannot be written. Then trims
    the folder."""
    import numpy as np

    where = folder()
    if where is None or sum(int(v.nbytes) for v in values) > MAX_ENTRY_BYTES:  # sizes known before the values are
        return
    arrays, records = [], []
    offset = 0
    for value in values:
        impl, arr = _plain(value)
        offset = -(-offset // _ALIGN) * _ALIGN
        records.append({"dtype": arr.dtype.name, "shape": list(arr.shape), "offset": offset, "key_impl": impl})
        arrays.append(arr)
        offset += arr.nbytes
    head = json.dumps({"format": 1, "arrays": records}).encode() + b"\n"
    start = _data_start(len(head))
    tmp = where / f".{name}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(head.ljust(start, b" "))
            for rec, arr in zip(records, arrays, strict=True):
                f.seek(start + rec["offset"])
                f.write(memoryview(arr.reshape(-1).view(np.uint8)))
        os.replace(tmp, where / f"{name}{_SUFFIX}")
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return
    _trim(where)


def _plain(value: Any) -> tuple[str | None, Any]:
    """``value`` as a C-ordered numpy array, and the name of its key implementation when it
    holds typed RNG keys (kept as their raw bits)."""
    import jax
    import numpy as np

    impl = None
    if jax.dtypes.issubdtype(getattr(value, "dtype", None), jax.dtypes.prng_key):
        impl = str(jax.random.key_impl(value))
        value = jax.random.key_data(value)
    return impl, np.asarray(value, order="C")  # (ascontiguousarray would make a scalar 1-d)


def _data_start(header_bytes: int) -> int:
    return -(-header_bytes // _PAGE) * _PAGE


def _read(path: Path, avals: Sequence[Any]) -> list[Any]:
    import jax
    import numpy as np

    with open(path, "rb") as f:
        line = f.readline()
    head = json.loads(line)
    records = head["arrays"]
    if head.get("format") != 1 or len(records) != len(avals):
        raise ValueError("not an entry of this program")
    start = _data_start(len(line))
    mapped = np.memmap(path, dtype=np.uint8, mode="r")
    out = []
    for rec, aval in zip(records, avals, strict=True):
        dtype = np.dtype(rec["dtype"])
        shape = tuple(rec["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        arr = np.frombuffer(mapped, dtype=dtype, count=count, offset=start + rec["offset"]).reshape(shape)
        if rec["key_impl"] is not None:
            value = jax.random.wrap_key_data(jax.device_put(arr), impl=rec["key_impl"])
        else:
            value = jax.device_put(arr)
        if value.shape != tuple(aval.shape) or value.dtype != aval.dtype:
            raise ValueError("not an entry of this program")
        out.append(value)
    os.utime(path)  # used now: trimmed last
    return out


def _trim(where: Path) -> None:
    """Removes the entries used least recently until the folder is within its budget."""
    entries = []
    for p in where.glob(f"*{_SUFFIX}"):
        with contextlib.suppress(OSError):
            st = p.stat()
            entries.append((st.st_mtime, st.st_size, p))
    total = sum(size for _, size, _ in entries)
    for _, size, p in sorted(entries):
        if total <= MAX_FOLDER_BYTES:
            break
        with contextlib.suppress(OSError):
            p.unlink()
        total -= size


def _setting_text() -> str:
    """Everything besides the program that decides its values: versions, settings, machine."""
    import jax
    import jaxlib

    values = getattr(jax.config, "values", {})
    settings = sorted((k, repr(v)) for k, v in values.items() if "cache" not in k)
    device = jax.devices()[0]
    return repr(
        (
            jax.__version__,
            jaxlib.__version__,
            dist_version("flax"),
            dist_version("nnx-build"),
            _source_digest(),
            settings,
            os.environ.get("XLA_FLAGS", ""),
            device.platform,
            device.device_kind,
            getattr(device.client, "platform_version", ""),
            platform.machine(),
            _cpu_flags(),
        )
    )


@functools.cache
def _source_digest() -> str:
    """The builder's source (the lowering rules swapped in here), read once per process."""
    source = hashlib.sha256()
    for p in sorted(Path(__file__).parent.glob("*.py")):
        source.update(p.read_bytes())
    return source.hexdigest()


@functools.cache
def _cpu_flags() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    return platform.processor()
