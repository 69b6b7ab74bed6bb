"""The export's progress display: one spinner line per stage, with its time (silent without a console)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["Stages"]


class Stages:
    """A rich Progress with one spinner line per stage (silent without a console)."""

    def __init__(self, console: Any | None, stages: Sequence[str]):
        self.console = console
        self.progress: Any = None
        self.tasks: dict[str, Any] = {}
        self.stages = list(stages)
        self.seconds: dict[str, float] = {}

    def __enter__(self) -> Stages:
        if self.console is not None:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                SpinnerColumn(finished_text="[green]✓"),
                TextColumn("{task.description:<12}"),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )
            self.progress.start()
            for s in self.stages:
                self.tasks[s] = self.progress.add_task(s, total=1, start=False, status="[dim]waiting")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()

    @contextlib.contextmanager
    def stage(self, name: str, status: str = "running") -> Iterator[dict[str, str]]:
        """A stage's spinner; set ``info["done"]`` to its result, or ``info["failed"]`` to a failure."""
        info = {"done": "done"}
        task = self.tasks.get(name)
        if task is not None:
            self.progress.start_task(task)
            self.progress.update(task, status=status)
        t0 = time.perf_counter()
        try:
            yield info
        except BaseException:
            if task is not None:
                self.progress.update(task, status="[red]failed")
                self.progress.stop_task(task)
            raise
        finally:
            self.seconds[name] = round(time.perf_counter() - t0, 3)
        if task is not None:
            if info.get("failed"):  # the stage ran to its end and reports a failure
                self.progress.update(task, status=f"[red]{info['failed']}")
            else:
                self.progress.update(task, completed=1, status=info["done"])
            self.progress.stop_task(task)
