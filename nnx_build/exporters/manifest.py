"""``DIR/manifest.json``: what was exported, from what, with which libraries, and how it verified."""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_text
from .common import file_sha256

__all__ = ["MANIFEST", "MANIFEST_FORMAT", "file_entries", "library_versions", "new_manifest", "read_manifest", "write_manifest"]

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
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
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
