"""--force replaces an export by one atomic exchange: the old folder is never moved aside."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from nnx_build import fileio


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux's")
def test_force_swaps_in_one_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, new = tmp_path / "export", tmp_path / ".export.x.tmp"
    out.mkdir()
    (out / "manifest.json").write_text("old")
    new.mkdir()
    (new / "manifest.json").write_text("new")
    renames: list[tuple[str, str]] = []
    real_rename = os.rename

    def recording_rename(a: object, b: object) -> None:
        renames.append((str(a), str(b)))
        real_rename(a, b)  # type: ignore[arg-type]

    monkeypatch.setattr(fileio.os, "rename", recording_rename)
    fileio.replace_dir(new, out, force=True)
    assert (out / "manifest.json").read_text() == "new"
    assert renames == [], "the old export was moved aside instead of swapped"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_without_force_an_existing_export_is_kept(tmp_path: Path) -> None:
    out, new = tmp_path / "export", tmp_path / ".export.x.tmp"
    out.mkdir()
    (out / "manifest.json").write_text("old")
    new.mkdir()
    with pytest.raises(FileExistsError):
        fileio.replace_dir(new, out, force=False)
    assert (out / "manifest.json").read_text() == "old"
