"""``DIR/manifest.json``: what was exported, from what, with which libraries, and how it verified."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_text
from .common import file_sha256

__all__ = [
    "MANIFEST",
    "MANIFEST_FORMAT",
    "file_entries",
    "folder_sha256",
    "library_versions",
    "new_manifest",
    "read_manifest",
    "spec_record",
    "weights_digest",
    "weights_record",
    "write_manifest",
]

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
LIBRARIES = ("nnx-build", "jax", "jaxlib", "flax", "numpy", "tensorflow", "tensorflow-cpu", "jax2onnx", "onnx", "onnxruntime")


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    if out.get("tensorflow") is None and out.get("tensorflow-cpu") is not None:
        out["tensorflow"] = out["tensorflow-cpu"]
    out.pop("tensorflow-cpu", None)
    return out


def file_entries(root: Path) -> list[dict[str, Any]]:
    """Every file under ``root`` but the manifest: relative path, sha256, size (sorted by path)."""
    files = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            rel = p.relative_to(root).as_posix()
            if rel == MANIFEST:
                continue
            files.append({"path": rel, "sha256": file_sha256(p), "size": p.stat().st_size})
    return sorted(files, key=lambda f: f["path"])


def new_manifest(**fields: Any) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else None,
        "versions": library_versions(),
        **fields,
    }


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    atomic_write_text(root / MANIFEST, json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    mask = os.umask(0o022)
    os.umask(mask)
    os.chmod(root / MANIFEST, 0o666 & ~mask)


def read_manifest(root: Path) -> dict[str, Any]:
    from .errors import ExportError

    path = root / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(f"{root} is not an nnx-build export: {MANIFEST} is missing") from None
    except (OSError, json.JSONDecodeError) as e:
        raise ExportError(f"cannot read {path}: {e}") from e


# ---- where the export came from: the spec and the weights ----------------------------------


def spec_record(spec: Any, name: str) -> dict[str, Any]:
    """The manifest's ``spec``: name, file path and sha256 (of the file, or of the text)."""
    record: dict[str, Any] = {"name": name, "path": None, "sha256": None}
    if isinstance(spec, str | os.PathLike) and _is_file(spec):
        record["path"] = str(Path(spec).resolve())
        record["sha256"] = file_sha256(Path(spec))
    elif isinstance(spec, str):
        record["sha256"] = hashlib.sha256(spec.encode()).hexdigest()
    return record


def _is_file(spec: str | os.PathLike[str]) -> bool:
    try:
        return Path(spec).is_file()
    except (OSError, ValueError):  # spec text is not a path
        return False


def weights_record(weights: str | os.PathLike[str] | None, step: int | None = None) -> dict[str, Any] | None:
    """The manifest's ``weights``: path, format, sha256 (a folder: over its files), checkpoint step."""
    if weights is None:
        return None
    p = Path(weights).resolve()
    from ..weights import FORMATS

    fmt = next((f.name for f in FORMATS.values() if p.exists() and f.detect(p)), "npz" if p.is_file() else "orbax")
    record: dict[str, Any] = {"path": str(p), "format": fmt}
    if p.is_dir():
        step = _checkpoint_step(p) if step is None else step
        record["step"] = step
        item = p / str(step) if step is not None and (p / str(step)).is_dir() else p
        record["sha256"] = folder_sha256(item)
    elif p.is_file():
        record["sha256"] = file_sha256(p)
    else:
        from .errors import WeightsError

        raise WeightsError(f"weights file {weights} does not exist")
    return record


def _checkpoint_step(path: Path) -> int | None:
    """The step an orbax run folder loads (its latest), or ``None`` for a step or item folder."""
    steps = [int(c.name) for c in path.iterdir() if c.is_dir() and c.name.isdigit() and (c / "model").is_dir()]
    return max(steps) if steps else None


def folder_sha256(path: Path) -> str:
    """sha256 over the relative paths and contents of every file under ``path``."""
    h = hashlib.sha256()
    for dirpath, dirs, names in sorted(os.walk(path)):
        dirs.sort()
        for n in sorted(names):
            f = Path(dirpath) / n
            h.update(f.relative_to(path).as_posix().encode() + b"\0" + file_sha256(f).encode())
    return h.hexdigest()


def weights_digest(weights: dict[str, Any]) -> str:
    """sha256 over the weights exported: every variable's name, dtype, shape and bytes."""
    import numpy as np

    h = hashlib.sha256()
    for k in sorted(weights):
        a = np.ascontiguousarray(np.asarray(weights[k]))
        h.update(f"{k}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.reshape(-1).view(np.uint8).data)  # the bytes in place: no copy of the weight
    return h.hexdigest()
