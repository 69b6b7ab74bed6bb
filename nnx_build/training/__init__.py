"""Training built models from the spec's ``train:`` section (``nnx-build train``).

Example:
  >>> from nnx_build.training import train
  >>> model, result = train("specs/digits_cnn.yaml", "digits.npz", out="ckpt/digits")  # doctest: +SKIP
  >>> result.eval["accuracy"]                                                          # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

# public name -> module; imported on first use, so the loss and metric tables
# (nnx_build.training.objectives, read by the schema) come without JAX
_EXPORTS: dict[str, str] = {
    "CheckpointError": "checkpoint",
    "CheckpointStore": "checkpoint",
    "read_model_weights": "checkpoint",
    "DataError": "data",
    "Dataset": "data",
    "load_data": "data",
    "EpochResult": "loop",
    "FitResult": "loop",
    "TrainError": "loop",
    "Trainer": "loop",
    "Plan": "plan",
    "make_plan": "plan",
    "validate_train": "plan",
    "TrainSetupError": "registry",
    "TrainState": "step",
    "TrainStep": "step",
    "make_train_step": "step",
    "LOSSES": "objectives",
    "METRICS": "objectives",
    "Objective": "objectives",
}

__all__ = sorted([*_EXPORTS, "prepare", "train"])


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'nnx_build.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # the names __getattr__ loads, for type checkers (re-exported: `x as x`)
    from .checkpoint import CheckpointError as CheckpointError
    from .checkpoint import CheckpointStore as CheckpointStore
    from .checkpoint import read_model_weights as read_model_weights
    from .data import DataError as DataError
    from .data import Dataset as Dataset
    from .data import load_data as load_data
    from .loop import EpochResult as EpochResult
    from .loop import FitResult as FitResult
    from .loop import Trainer as Trainer
    from .loop import TrainError as TrainError
    from .objectives import LOSSES as LOSSES
    from .objectives import METRICS as METRICS
    from .objectives import Objective as Objective
    from .plan import Plan as Plan
    from .plan import make_plan as make_plan
    from .plan import validate_train as validate_train
    from .registry import TrainSetupError as TrainSetupError
    from .step import TrainState as TrainState
    from .step import TrainStep as TrainStep
    from .step import make_train_step as make_train_step


def prepare(
    spec: Any, data: str | os.PathLike[str] | dict[str, Any], *, seed: int | None = None, options: Any = None
) -> Trainer:
    """Compiles and builds ``spec``, resolves its ``train:`` section, reads ``data``: a ready :class:`Trainer`.

    ``options``: a :class:`nnx_build.pipeline.Options` (limits, budgets, plugins, seed, weights).
    """
    from .. import pipeline
    from ..spec_io import spec_locator
    from .data import load_data
    from .loop import Trainer
    from .plan import make_plan

    options = pipeline.make_options(options, seed=seed)
    program = pipeline.compile(spec, options)
    plan = make_plan(program, spec_locator(program.spec))
    report = pipeline.check(program, options)
    dataset = load_data(data, plan)
    model = pipeline.load_weights(pipeline.allocate(program, options, nbytes=report.total_bytes), options, program)
    trainer = Trainer(model, plan, dataset)
    mesh = pipeline.mesh_plan(program, options)
    if mesh is not None:
        from ..sharding import shard_trainer

        shard_trainer(trainer, mesh)
    return trainer


def train(
    spec: Any,
    data: str | os.PathLike[str] | dict[str, Any],
    *,
    epochs: int | None = None,
    out: str | os.PathLike[str] | None = None,
    resume: bool = False,
    on_epoch: Callable[[EpochResult], None] | None = None,
) -> tuple[Any, FitResult]:
    """Builds ``spec`` and trains it on ``data``; returns ``(model, result)``.

    Args:
      spec: a spec (path, text or :class:`Spec`) with a ``train:`` section.
      data: an ``.npz`` (or a dict) with one array per input and target.
      epochs: stop after this many epochs in total (default ``train.epochs``).
      out: checkpoint directory (orbax); a checkpoint after every epoch.
      resume: continue from the latest checkpoint in ``out``.
    """
    from .checkpoint import CheckpointStore

    trainer = prepare(spec, data)
    if out is None:
        return trainer.model, trainer.fit(epochs, resume=resume, on_epoch=on_epoch)
    with CheckpointStore(out) as store:
        return trainer.model, trainer.fit(epochs, store=store, resume=resume, on_epoch=on_epoch)
