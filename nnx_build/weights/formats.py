"""The table of weight formats: name -> (detect, load, save[, open]).

Each format reads a file (or folder) into a flat ``{"name": array}`` dict and writes one
back. To add a format, write its functions and add one line to :data:`FORMATS` (or call
:func:`register_format` from a plugin). ``detect`` answers "is this existing path mine?"
when reading; when writing, a format is chosen by name or by the path's suffix
(:attr:`WeightFormat.suffix`). A format with ``open`` is read lazily: its
:class:`TensorSource` gives every tensor's name, shape and dtype from the file's header,
and then one tensor at a time (``safetensors``: each read straight into a fresh array).

Formats:
  safetensors: a ``.safetensors`` file, a sharded ``model.safetensors.index.json`` (its
    ``weight_map`` names the shard of each tensor), or a folder holding either.
  npz: ``numpy.savez`` without pickles.
  orbax: an ``nnx-build train --out`` checkpoint folder.
  pickle: ``.bin`` / ``.pt`` / ``.pth`` / ``.ckpt`` files (``torch.save``) are refused,
    never unpickled (unpickling runs code); the message says how to convert them.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import WeightsError

__all__ = [
    "ALIGN",
    "FORMATS",
    "DictSource",
    "TensorInfo",
    "TensorSource",
    "WeightFormat",
    "aligned_empty",
    "open_source",
    "register_format",
    "save_safetensors",
    "to_device",
]

Flat = dict[str, np.ndarray]


@dataclass(frozen=True)
class TensorInfo:
    """What a file's header says of one tensor: shape, dtype and the file holding it."""

    shape: tuple[int, ...]
    dtype: np.dtype
    file: str

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


class TensorSource:
    """A weights file read lazily: :meth:`infos` from the header, :meth:`read` one tensor.

    Use as a context manager; :meth:`read` returns a fresh array (not a view of the file).
    """

    path: Path

    def infos(self) -> dict[str, TensorInfo]:
        raise NotImplementedError

    def read(self, name: str) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> TensorSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DictSource(TensorSource):
    """A source over arrays already in memory (formats without a lazy reader)."""

    def __init__(self, flat: Mapping[str, Any], path: Path | str = "<weights>"):
        self.path = Path(path)
        self._flat = {k: np.asarray(v) for k, v in flat.items()}

    def infos(self) -> dict[str, TensorInfo]:
        return {k: TensorInfo(tuple(v.shape), v.dtype, str(self.path)) for k, v in self._flat.items()}

    def read(self, name: str) -> np.ndarray:
        return np.array(self._flat[name])


@dataclass(frozen=True)
class WeightFormat:
    """One weight format.

    Attributes:
      name: what users type (``format="npz"``).
      suffix: the path suffix that selects it when saving (``""``: a folder).
      detect: ``detect(path)`` for an existing path: is it in this format?
      load: ``load(path) -> {"a/b": array}``.
      save: ``save(weights, path)``.
      open: ``open(path) -> TensorSource``, a lazy reader (``None``: :attr:`load` is used).
    """

    name: str
    suffix: str
    detect: Callable[[Path], bool]
    load: Callable[[Path], Flat]
    save: Callable[[Mapping[str, Any], Path], None]
    open: Callable[[Path], TensorSource] | None = field(default=None)


# ---- safetensors: memory-mapped, one tensor at a time; single file or sharded index ----

_ST_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
}
_ST_INDEX = "model.safetensors.index.json"
_MAX_HEADER = 100_000_000  # safetensors' own bound on the JSON header


def _np_dtype(name: str) -> np.dtype:
    try:
        return np.dtype(name)
    except TypeError:
        import ml_dtypes

        return np.dtype(getattr(ml_dtypes, name))


def _st_files(path: Path) -> Path:
    """The file to open for ``path``: itself, or the index / single file inside a folder."""
    if path.is_dir():
        for name in (_ST_INDEX, "model.safetensors"):
            if (path / name).is_file():
                return path / name
        found = sorted(path.glob("*.safetensors"))
        if len(found) == 1:
            return found[0]
        raise WeightsError(f"{path}: expected {_ST_INDEX} or one .safetensors file in the folder, found {len(found)}")
    return path


def _st_detect(path: Path) -> bool:
    if path.is_dir():
        return (path / _ST_INDEX).is_file() or any(path.glob("*.safetensors"))
    return path.is_file() and (path.suffix == ".safetensors" or path.name.endswith(".safetensors.index.json"))


def _st_header(file: Path) -> dict[str, TensorInfo]:
    """The tensors a safetensors file declares, from its JSON header alone."""
    try:
        with open(file, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise WeightsError(f"{file}: not a safetensors file (shorter than its 8-byte header length)")
            (n,) = struct.unpack("<Q", head)
            if n > _MAX_HEADER:
                raise WeightsError(f"{file}: not a safetensors file (header length {n:,} bytes)")
            header = json.loads(f.read(n))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsError(f"cannot read safetensors header of {file}: {e}") from e
    out: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        code = entry.get("dtype") if isinstance(entry, dict) else None
        if code not in _ST_DTYPES:
            raise WeightsError(f"{file}: tensor '{name}' has dtype {code!r}, which nnx-build cannot read")
        out[name] = TensorInfo(tuple(int(d) for d in entry["shape"]), _np_dtype(_ST_DTYPES[code]), str(file))
    return out


class SafetensorsSource(TensorSource):
    """A ``.safetensors`` file or a sharded index: headers first, tensors memory-mapped one at a time."""

    def __init__(self, path: Path):
        self.path = path
        file = _st_files(path)
        self._infos: dict[str, TensorInfo] = {}
        if file.name.endswith(".index.json"):
            try:
                weight_map = json.loads(file.read_text())["weight_map"]
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise WeightsError(f"cannot read the safetensors index {file}: {e}") from e
            headers: dict[str, dict[str, TensorInfo]] = {}
            for name, shard in weight_map.items():
                shard_path = file.parent / shard
                if Path(shard).is_absolute() or ".." in Path(shard).parts:
                    raise WeightsError(f"{file}: shard '{shard}' of tensor '{name}' is outside the index's folder")
                if shard not in headers:
                    if not shard_path.is_file():
                        raise WeightsError(f"{file}: shard '{shard}' (of tensor '{name}') does not exist")
                    headers[shard] = _st_header(shard_path)
                if name not in headers[shard]:
                    raise WeightsError(f"{file}: tensor '{name}' is not in its shard '{shard}'")
                self._infos[name] = headers[shard][name]
        else:
            self._infos = _st_header(file)
        self._open: dict[str, Any] = {}

    def infos(self) -> dict[str, TensorInfo]:
        return dict(self._infos)

    def _offset(self, name: str, info: TensorInfo) -> int:
        """Where tensor ``name``'s bytes start in its file (the header is read once per file)."""
        if info.file not in self._open:
            with open(info.file, "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(n))
            self._open[info.file] = {k: 8 + n + v["data_offsets"][0] for k, v in header.items() if k != "__metadata__"}
        return self._open[info.file][name]

    def read(self, name: str) -> np.ndarray:
        # read into a fresh aligned array, not memory-mapped: the file's pages read so far
        # would count in the process's resident memory while the mapping stays open
        info = self._infos[name]
        out = aligned_empty(info.shape, info.dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))
        try:
            with open(info.file, "rb", buffering=0) as f:
                f.seek(self._offset(name, info))
                done = 0
                while done < len(view):
                    got = f.readinto(view[done:])
                    if not got:
                        raise WeightsError(f"{info.file} ends inside tensor '{name}': the file is truncated")
                    done += got
        except OSError as e:
            raise WeightsError(f"cannot read tensor '{name}' of {info.file}: {e}") from e
        return out

    def close(self) -> None:
        self._open.clear()


ALIGN = 64  # JAX on CPU takes an array this aligned without copying it (jax.device_put)


def aligned_empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts at a multiple of :data:`ALIGN` bytes."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(n + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start : start + n].view(dtype).reshape(shape)


def to_device(x: Any, dtype: Any, *, owned: bool = True, sharding: Any = None) -> Any:
    """``x`` as a JAX array of ``dtype``. An ``owned`` host array (fresh, changed by no one
    afterwards) that is C-contiguous, aligned and of that dtype becomes the JAX array
    without a copy (JAX on CPU keeps using its memory); anything else is copied once.
    With ``sharding`` (a ``NamedSharding``) each device receives only its shard."""
    import jax

    x = np.asarray(x)
    dtype = np.dtype(dtype)
    if not (owned and x.dtype == dtype and x.flags.c_contiguous and x.ctypes.data % ALIGN == 0):
        y = aligned_empty(x.shape, dtype)
        np.copyto(y, x, casting="unsafe")
        x = y
    return jax.device_put(x, sharding)


def _st_open(path: Path) -> TensorSource:
    return SafetensorsSource(path)


def _st_load(path: Path) -> Flat:
    with _st_open(path) as src:
        return {k: src.read(k) for k in src.infos()}


def st_metadata(source: TensorSource) -> dict[str, str] | None:
    """The ``__metadata__`` of a single-file safetensors source (``{"format": "pt"}``), if any."""
    if not isinstance(source, SafetensorsSource):
        return None
    file = _st_files(source.path)
    if file.name.endswith(".index.json"):
        return None
    with open(file, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        meta = json.loads(f.read(n)).get("__metadata__")
    return dict(meta) if isinstance(meta, dict) else None


def save_safetensors(weights: Mapping[str, Any], path: Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.safetensors", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: np.ascontiguousarray(np.asarray(v)) for k, v in weights.items()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---- pickle files: refused, never unpickled ---------------------------------------------

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


def _pickle_detect(path: Path) -> bool:
    if path.is_dir():
        return not _st_detect(path) and any((path / f"pytorch_model{s}").is_file() for s in _PICKLE_SUFFIXES)
    return path.suffix in _PICKLE_SUFFIXES


def _pickle_refuse(path: Path) -> Flat:
    raise WeightsError(
        f"{path} is a pickle file (torch.save); nnx-build never unpickles files, since loading a pickle runs "
        "code from it. Convert it once where torch is installed: python -c \"import torch; "
        "from safetensors.torch import save_file; "
        f"save_file(torch.load('{path.name}', weights_only=True), 'model.safetensors')\", then pass model.safetensors"
    )



def _pickle_refuse_save(weights: Mapping[str, Any], path: Path) -> None:
    raise WeightsError(f"{path}: nnx-build writes no pickle files; save to a .safetensors or .npz file")


# ---- npz: the pure-dict state, keys joined by '/' ---------------------------------------


def _npz_detect(path: Path) -> bool:
    return path.is_file() and path.suffix == ".npz"


def _npz_load(path: Path) -> Flat:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError) as e:
        raise WeightsError(f"cannot read weights file {path}: {e}") from e


def _npz_save(weights: Mapping[str, Any], path: Path) -> None:
    # written beside and renamed: a reader sees the old file or the new one, never half
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in weights.items()})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---- orbax: an ``nnx-build train --out`` checkpoint folder, a step folder or its model item --


def _orbax_detect(path: Path) -> bool:
    return path.is_dir()


def _orbax_load(path: Path) -> Flat:
    from ..training.checkpoint import CheckpointError, read_model_weights

    try:
        return read_model_weights(path)
    except CheckpointError as e:
        raise WeightsError(str(e)) from e


def _orbax_save(weights: Mapping[str, Any], path: Path) -> None:
    # the ``model`` item of a checkpoint step, as ``nnx-build train --out`` writes it
    import orbax.checkpoint as ocp

    from ..training.checkpoint import flat_to_nested

    item = path.absolute() / "model"
    if item.exists():
        raise WeightsError(f"{path} already holds a checkpoint; save to a new folder")
    checkpointer = ocp.StandardCheckpointer()
    try:
        checkpointer.save(item, flat_to_nested({k: np.asarray(v) for k, v in weights.items()}))
        checkpointer.wait_until_finished()
    finally:
        checkpointer.close()


FORMATS: dict[str, WeightFormat] = {
    "safetensors": WeightFormat("safetensors", ".safetensors", _st_detect, _st_load, save_safetensors, _st_open),
    "pickle": WeightFormat("pickle", ".bin", _pickle_detect, _pickle_refuse, _pickle_refuse_save),
    "npz": WeightFormat("npz", ".npz", _npz_detect, _npz_load, _npz_save),
    "orbax": WeightFormat("orbax", "", _orbax_detect, _orbax_load, _orbax_save),
}


def register_format(fmt: WeightFormat, *, first: bool = False) -> None:
    """Adds (or replaces) a format; ``first`` puts it ahead of the others when detecting."""
    others = {k: v for k, v in FORMATS.items() if k != fmt.name}
    FORMATS.clear()
    FORMATS.update({fmt.name: fmt, **others} if first else {**others, fmt.name: fmt})


def open_source(path: Path, fmt: WeightFormat) -> TensorSource:
    """A lazy reader of ``path`` in ``fmt`` (formats without one are read whole)."""
    return fmt.open(path) if fmt.open is not None else DictSource(fmt.load(path), path)
