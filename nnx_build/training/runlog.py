"""What a training run leaves behind: ``metrics.jsonl`` and TensorBoard event files.

:class:`RunLog` takes one record per step and one per epoch:

- ``metrics.jsonl`` (one JSON object a line, appended on resume): ``{"step": 12, "loss":
  0.31, "accuracy": 0.9, "learning_rate": 0.001, "grad_norm": 0.8, "step_time": 0.004}``
  for a step, ``{"epoch": 3, "step": 60, "train": {...}, "eval": {...}, "seconds": 1.2}``
  for an epoch;
- TensorBoard scalars (``--logdir``), one event file a run, written with TensorBoard's
  own record writer and protos (TensorFlow is not imported): ``train/loss``, ``train/<metric>``, ``train/learning_rate``,
  ``train/grad_norm``, ``train/step_time`` at every step, and ``epoch/train/<metric>``,
  ``epoch/eval/<metric>``, ``epoch/seconds`` at the step that ends each epoch. View them
  with ``tensorboard --logdir DIR``.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from pathlib import Path
from typing import Any

__all__ = ["RunLog"]


def _number(v: Any) -> float | None:
    f = float(v)
    return f if math.isfinite(f) else None


def _new_event_file(logdir: Path) -> Any:
    """A new event file in ``logdir``, never an earlier run's: a run resumed in the same process
    within the same second gets the next free ``.1``, ``.2`` name instead of truncating it."""
    base = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.nnx-build"
    for i in range(1000):
        try:
            return open(logdir / (base if i == 0 else f"{base}.{i}"), "xb")  # noqa: SIM115 (closed by RunLog.close())
        except FileExistsError:
            continue
    raise FileExistsError(f"{logdir}: no free event file name after {base}.999")


class RunLog:
    """Writes ``metrics.jsonl`` to ``jsonl`` (a file path) and event files to ``logdir`` (either may be None)."""

    def __init__(self, jsonl: str | os.PathLike[str] | None = None, logdir: str | os.PathLike[str] | None = None):
        self._jsonl = None
        self._writer = None
        if jsonl is not None:
            Path(jsonl).parent.mkdir(parents=True, exist_ok=True)
            self._jsonl = open(jsonl, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())
        if logdir is not None:
            # not tensorboard's EventFileWriter: it opens files through TensorFlow when installed
            from tensorboard.compat.proto.event_pb2 import Event
            from tensorboard.summary.writer.record_writer import RecordWriter

            Path(logdir).mkdir(parents=True, exist_ok=True)
            self._writer = RecordWriter(_new_event_file(Path(logdir)))
            self._write(Event(wall_time=time.time(), file_version="brain.Event:2"))

    def _scalars(self, step: int, values: dict[str, float | None]) -> None:
        if self._writer is None:
            return
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        summary = Summary(value=[Summary.Value(tag=k, simple_value=v) for k, v in values.items() if v is not None])
        self._write(Event(wall_time=time.time(), step=step, summary=summary))

    def _write(self, event: Any) -> None:
        self._writer.write(event.SerializeToString())

    def _line(self, record: dict[str, Any]) -> None:
        if self._jsonl is not None:
            self._jsonl.write(json.dumps(record) + "\n")

    def step(self, step: int, metrics: dict[str, Any], *, learning_rate: float | None = None,
             grad_norm: float | None = None, step_time: float | None = None) -> None:
        """One training step: its batch's metrics, the learning rate it used, gradient norm, seconds."""
        values = {k: _number(v) for k, v in metrics.items()}
        extra = {"learning_rate": learning_rate, "grad_norm": grad_norm, "step_time": step_time}
        values.update({k: _number(v) for k, v in extra.items() if v is not None})
        self._line({"step": step, **values})
        self._scalars(step, {f"train/{k}": v for k, v in values.items()})

    def epoch(self, epoch: int, step: int, train: dict[str, float], evaluation: dict[str, float], seconds: float) -> None:
        """The end of an epoch: mean training metrics, held-out metrics, seconds."""
        self._line({"epoch": epoch, "step": step, "train": train, "eval": evaluation, "seconds": round(seconds, 6)})
        values = {f"epoch/train/{k}": _number(v) for k, v in train.items()}
        values.update({f"epoch/eval/{k}": _number(v) for k, v in evaluation.items()})
        values["epoch/seconds"] = seconds
        self._scalars(step, values)
        self.flush()

    def flush(self) -> None:
        if self._jsonl is not None:
            self._jsonl.flush()
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
