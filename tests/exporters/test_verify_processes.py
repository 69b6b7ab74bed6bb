"""Verification runs one process per target, started as each target is written: each target's
failure stays its own (a planted mismatch, a process that dies), the others pass."""

from __future__ import annotations

from pathlib import Path

import crash_target
import dummy_target
import pytest

from nnx_build.exporters import TARGETS, PartialExportError, export

SPEC = Path(__file__).resolve().parents[2] / "specs" / "seed" / "autoencoder.yaml"


@pytest.mark.slow
def test_each_target_is_judged_by_its_own_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(TARGETS, "liar", dummy_target.LIAR)
    monkeypatch.setitem(TARGETS, "crash", crash_target.CRASH)
    with pytest.raises(PartialExportError) as info:
        export(SPEC, tmp_path / "out", to="crash,stablehlo,liar", batch_sizes=(2,))
    assert info.value.succeeded == ["stablehlo"]
    assert sorted(info.value.failed) == ["crash", "liar"]
    text = str(info.value)
    assert "liar main:decoder at batch=2 differs from JAX" in text
    assert "crash could not be reloaded and run: verification process exited with 3" in text
    assert "stablehlo could not" not in text and "stablehlo main" not in text
    assert not (tmp_path / "out").exists()


def test_large_artifacts_are_verified_without_the_compilation_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nnx_build.exporters.verify_pool import CACHE_LIMIT_BYTES, child_env

    small, large = tmp_path / "small", tmp_path / "large"
    small.mkdir()
    large.mkdir()
    (small / "main.bin").write_bytes(b"x" * 1024)
    with (large / "main.bin").open("wb") as f:  # sparse: the size without the writing
        f.truncate(CACHE_LIMIT_BYTES)
    monkeypatch.setenv("JAX_ENABLE_COMPILATION_CACHE", "true")
    assert child_env(large)["JAX_ENABLE_COMPILATION_CACHE"] == "false"
    assert child_env(small)["JAX_ENABLE_COMPILATION_CACHE"] == "true"
