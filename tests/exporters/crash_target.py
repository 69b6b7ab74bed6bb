"""A target whose artifacts kill the process that loads them (tests of verification processes)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nnx_build.exporters import ExportOptions, Run, Target


def _export(entries: list[Any], root: Path, options: ExportOptions) -> dict[str, Any]:
    (root / "crash").mkdir()
    (root / "crash" / "main.bin").write_bytes(b"")
    return {"dir": "crash", "entries": {e.name: "main.bin" for e in entries}}


def _load(root: Path, section: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Run]:
    os._exit(3)  # the whole verification process dies, as a runtime crashing in native code would


CRASH = Target("crash", "kills its verification process (tests)", "crash", "crash/main.bin", _export, _load, module=__name__ + ":CRASH")
