"""The build command pauses Python's garbage collector and gives it back as it was."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from nnx_build.commands.build import paused_gc


@pytest.mark.parametrize("enabled", [True, False])
def test_collector_is_off_inside_and_as_before_after(enabled: bool) -> None:
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        with paused_gc():
            assert not gc.isenabled()
        assert gc.isenabled() is enabled
        with pytest.raises(KeyError), paused_gc():
            raise KeyError("a failing build")
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_the_build_command_allocates_with_the_collector_paused(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from nnx_build import pipeline
    from nnx_build.cli import main

    seen: list[bool] = []
    allocate = pipeline.allocate

    def record(*args: object, **kwargs: object) -> object:
        seen.append(gc.isenabled())
        return allocate(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "allocate", record)
    monkeypatch.setenv("NNX_BUILD_COMPILE_CACHE", "0")
    assert gc.isenabled()
    assert main(["build", str(Path(__file__).parents[1] / "specs" / "seed" / "model.yaml")]) == 0
    assert seen == [False] and gc.isenabled()
    assert "forward on zeros" in capsys.readouterr().out
