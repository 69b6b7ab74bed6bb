"""The training loop on the fast path: epochs of :mod:`nnx_build.training.step` calls.

The model is split once (:func:`~nnx_build.training.step.make_train_step`) into a graph
definition (one in train mode, one in eval mode), its RNG state, the variables that train
(``wrt``) and the rest (batch statistics, frozen kinds). One jitted pure function
``step(state, data, idx)`` merges them, runs the forward, takes the gradient with
``jax.value_and_grad`` and applies the optax update; nothing is split or merged per step
outside the trace (``nnx.jit`` would do that on every call). Before the first step the
targets are checked against the model's outputs (:mod:`nnx_build.training.checks`).

Determinism, so that a resumed run continues the same curve:

* the held-out split and each epoch's order come from ``(seed, epoch)``
  (:mod:`nnx_build.training.data`);
* dropout keys are the model's initial RNG keys folded with the global step, counts
  reset each step, so no RNG state needs checkpointing;
* a checkpoint holds every non-RNG variable, the optimizer state and the step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ..errors import NnxBuildError
from .checks import check_targets, compare_fingerprints, data_digest_v1
from .data import Dataset, epoch_order
from .plan import Plan
from .step import TrainState, make_train_step

__all__ = ["EpochResult", "FitResult", "TrainError", "Trainer"]


class TrainError(NnxBuildError):
    pass


@dataclass
class EpochResult:
    epoch: int  # 1-based
    step: int
    train: dict[str, float]
    eval: dict[str, float]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "step": self.step, "train": self.train, "eval": self.eval, "seconds": round(self.seconds, 3)}


@dataclass
class FitResult:
    epochs: int
    step: int
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: int | None = None
    #: with a mesh: what this process read of the data (:meth:`nnx_build.sharding.LocalRows.to_json`)
    data_read: dict[str, Any] | None = None

    @property
    def train(self) -> dict[str, float]:
        return dict(self.history[-1]["train"]) if self.history else {}

    @property
    def eval(self) -> dict[str, float]:
        return dict(self.history[-1]["eval"]) if self.history else {}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"epochs": self.epochs, "step": self.step, "train": self.train, "eval": self.eval}
        if self.data_read is not None:
            out["data_read"] = self.data_read
        return out


class Trainer:
    """Trains ``model`` (an ``nnx.Module``) as ``plan`` says; ``model`` gets the weights at the end.

    Example:
      >>> trainer = Trainer(model, plan, dataset)            # doctest: +SKIP
      >>> result = trainer.fit(epochs=10)                    # doctest: +SKIP
      >>> result.eval["accuracy"]                            # doctest: +SKIP
    """

    def __init__(self, model: nnx.Module, plan: Plan, data: Dataset):
        self.model = model
        self.plan = plan
        self.data = data
        t = plan.train
        n_train = len(data.train_idx)
        self.batch_size = min(t.batch_size, n_train)
        self.steps_per_epoch = n_train // self.batch_size
        self.eval_batch_size = min(t.eval_batch_size or t.batch_size, max(1, len(data.eval_idx)))
        # the schedule follows the spec's train.epochs, whatever epoch a run stops at
        self.tx = plan.make_tx(self.steps_per_epoch, t.epochs)
        train_model = nnx.clone(model)
        train_model.train()
        self.train_step = make_train_step(train_model, self._objective, self.tx, wrt=plan.wrt)
        if not self.train_step.param_keys:
            raise TrainError(
                f"no variable of kind {plan.wrt_description} to train (wrt); the model's variables are "
                + ", ".join(sorted({type(v).__name__ for _, v in nnx.to_flat_state(nnx.state(model, nnx.Not(nnx.RngState)))}))
            )
        self._device_data: dict[str, Any] | None = None
        #: with a mesh (:func:`nnx_build.sharding.shard_trainer`): ``feed(rows) -> batch``, each
        #: process reading only the rows its devices hold; None: the data set is on the device
        self.feed: Any = None
        sample = {k: jnp.asarray(v[: self.batch_size]) for k, v in data.arrays.items()}
        check_targets(data, plan, self.train_step.output_shapes(sample, self._outputs))
        self.state: TrainState = self.train_step.init()
        self.step = 0
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self._schedule: Any = None  # the learning rate (schedule), looked up when a step is logged
        self._fingerprint: dict[str, str] | None = None

    @property
    def device_data(self) -> dict[str, Any]:
        """The whole data set on the device, copied there on first use (not with a ``feed``)."""
        if self._device_data is None:
            self._device_data = {k: jnp.asarray(v) for k, v in self.data.arrays.items()}
        return self._device_data

    def _run(self, rows: np.ndarray, mask: np.ndarray | None = None) -> dict[str, Any]:
        """One train step on ``rows`` (or, with ``mask``, the eval sums over them)."""
        if mask is not None:
            if self.feed is None:
                return self.train_step.evaluate(self.state, self.device_data, rows, mask)
            return self.train_step.evaluate(self.state, self.feed(rows), None, mask)
        if self.feed is None:
            self.state, metrics = self.train_step(self.state, self.device_data, rows)
        else:
            self.state, metrics = self.train_step(self.state, self.feed(rows))
        return metrics

    @property
    def kinds(self) -> tuple[str, ...]:
        """The variable kinds that train (what ``wrt`` matches in this model)."""
        return self.train_step.kinds

    @property
    def params(self) -> dict[str, Any]:
        """The variables that train, flat."""
        return self.state.params

    # ---- the objective ------------------------------------------------------------------

    def _outputs(self, module: Any, batch: dict[str, Any]) -> tuple[Any, ...]:
        outs = module(*(batch[n] for n in self.plan.inputs))
        return outs if isinstance(outs, tuple) else (outs,)

    def _objective(self, module: Any, batch: dict[str, Any]) -> dict[str, Any]:
        plan = self.plan
        outs = self._outputs(module, batch)
        values: dict[str, Any] = {}
        total = 0.0
        for term in plan.losses:
            v = term.fn(outs[term.output], batch[term.target])
            if len(plan.losses) > 1:
                values[term.key] = v
            total = total + term.weight * v
        values["loss"] = total
        for m in plan.metrics:
            values[m.key] = m.fn(outs[m.output], batch[m.target])
        return values

    # ---- checkpoints ----------------------------------------------------------------------

    def weights(self) -> dict[str, Any]:
        """Every non-RNG variable, flat: the trained ones and the rest."""
        return {**self.state.params, **self.state.rest}

    def fingerprint(self) -> dict[str, str]:
        """What a resumed run must share with the checkpoint (:meth:`Plan.fingerprint`), computed once:
        the data digest reads the data (each process its share, then a collective)."""
        if self._fingerprint is None:
            self._fingerprint = self.plan.fingerprint(self.steps_per_epoch, self.data)
        return dict(self._fingerprint)

    def checkpoint_meta(self) -> dict[str, Any]:
        t = self.plan.train
        return {"format": 2, "step": self.step, "epoch": self.epoch, "history": self.history,
                "wrt": list(self.plan.wrt_names), "wrt_exclude": list(self.plan.wrt_exclude), "kinds": list(self.kinds),
                "seed": t.seed, "batch_size": self.batch_size, "steps_per_epoch": self.steps_per_epoch,
                "fingerprint": self.fingerprint()}

    def save(self, store: Any) -> None:
        store.save(self.step, self.weights(), jax.tree.leaves(self.state.opt_state), self.checkpoint_meta())

    def check_resume(self, store: Any, step: int | None = None) -> dict[str, Any]:
        """The checkpoint's metadata; ``TrainError`` if it is of another run (spec, optimizer, schedule, data)."""
        meta = store.read_meta(step)
        changed = compare_fingerprints(meta.get("fingerprint"), self.fingerprint(), lambda: data_digest_v1(self.data))
        if changed:
            raise TrainError(f"cannot resume from {store.directory}: {changed} since the checkpoint; "
                             "restore the spec and data it was trained with, or pass --force to start over")
        if meta.get("steps_per_epoch") not in (None, self.steps_per_epoch):
            raise TrainError(
                f"the checkpoint was written with {meta['steps_per_epoch']} steps per epoch, this run has "
                f"{self.steps_per_epoch}: the data or batch size changed, so resuming would not continue the same run"
            )
        return meta

    def restore(self, store: Any, step: int | None = None) -> None:
        """Continues from a checkpoint of the same run; refuses one whose spec, optimizer, schedule or data differ."""
        self.check_resume(store, step)
        leaves, treedef = jax.tree.flatten(self.state.opt_state)
        weights, opt_leaves, meta = store.restore(step, self.weights(), leaves)
        self.step = int(meta["step"])
        self.epoch = int(meta["epoch"])
        self.history = list(meta.get("history", []))
        self.state = TrainState(
            params={k: jnp.asarray(weights[k]) for k in self.state.params},
            rest={k: jnp.asarray(weights[k]) for k in self.state.rest},
            opt_state=jax.tree.unflatten(treedef, [jnp.asarray(x) for x in opt_leaves]),
            rngs=self.state.rngs,
            step=jnp.asarray(self.step, jnp.uint32),
        )

    def write_back(self) -> None:
        """Puts the current weights into the caller's model."""
        self.train_step.write_back(self.state, self.model)

    # ---- running ------------------------------------------------------------------------

    def evaluate(self) -> dict[str, float]:
        idx_all = self.data.eval_idx
        if len(idx_all) == 0:
            return {}
        b = self.eval_batch_size
        sums: dict[str, float] = {}
        for start in range(0, len(idx_all), b):
            idx = idx_all[start : start + b]
            mask = np.ones(b, np.float32)
            if len(idx) < b:  # pad the last batch: one compiled shape
                mask[len(idx):] = 0
                idx = np.concatenate([idx, np.repeat(idx[:1], b - len(idx))])
            out = self._run(idx, mask)
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v)
        return {k: sums[k] / len(idx_all) for k in self.plan.metric_keys}

    def run_epoch(self, on_step: Callable[[int, dict[str, Any]], None] | None = None, log: Any = None) -> EpochResult:
        """One epoch; ``log`` (a :class:`~nnx_build.training.runlog.RunLog`) gets every step and the epoch."""
        t0 = time.perf_counter()
        t = self.plan.train
        order = epoch_order(self.data.train_idx, t.seed, self.epoch, t.shuffle)
        b = self.batch_size
        totals: dict[str, Any] = {}
        steps: list[tuple[int, dict[str, Any], float]] = []  # for the log: read once, at the end of the epoch
        last = time.perf_counter()
        for i in range(self.steps_per_epoch):
            metrics = self._run(order[i * b : (i + 1) * b])
            self.step += 1
            if log is not None:
                now = time.perf_counter()
                steps.append((self.step, metrics, now - last))
                last = now
            for k, v in metrics.items():
                totals[k] = totals.get(k, 0.0) + v
            if on_step is not None:
                on_step(i + 1, metrics)
        if log is not None:
            self._log_steps(log, steps)
        train = {k: float(totals[k]) / self.steps_per_epoch for k in self.plan.metric_keys}
        if not all(np.isfinite(v) for v in train.values()):
            raise TrainError(f"epoch {self.epoch + 1}: the loss is not finite ({train}); lower the learning rate or clip gradients")
        evaluation = self.evaluate()
        self.epoch += 1
        result = EpochResult(self.epoch, self.step, train, evaluation, time.perf_counter() - t0)
        self.history.append(result.to_json())
        if log is not None:
            log.epoch(result.epoch, result.step, result.train, result.eval, result.seconds)
        return result

    def _log_steps(self, log: Any, steps: list[tuple[int, dict[str, Any], float]]) -> None:
        """Each step's metrics, learning rate, gradient norm and time (seconds since the step before it
        returned: they add up to the epoch's training time), fetched from the device in one go."""
        host = jax.device_get([m for _, m, _ in steps])
        if self._schedule is None:
            self._schedule = self.plan.learning_rate(self.steps_per_epoch, self.plan.train.epochs)
        lrs: Any = [self._schedule] * len(steps)
        if callable(self._schedule):  # the rate each step used: the schedule at the count of updates before it
            counts = np.array([s - 1 for s, _, _ in steps], np.int32)
            try:
                lrs = np.broadcast_to(np.asarray(self._schedule(jnp.asarray(counts))), counts.shape)
            except Exception:  # noqa: BLE001  (a schedule that takes one count at a time)
                lrs = [self._schedule(int(c)) for c in counts]
        for (step, _, seconds), metrics, lr in zip(steps, host, jax.device_get(lrs), strict=True):
            values = {k: float(v) for k, v in metrics.items()}
            grad_norm = values.pop("grad_norm", None)
            log.step(step, values, learning_rate=None if lr is None else float(lr), grad_norm=grad_norm,
                     step_time=seconds)

    def fit(
        self,
        epochs: int | None = None,
        *,
        store: Any = None,
        resume: bool = False,
        on_step: Callable[[int, dict[str, Any]], None] | None = None,
        on_epoch: Callable[[EpochResult], None] | None = None,
        on_start: Callable[[Trainer], None] | None = None,
        log: Any = None,
    ) -> FitResult:
        """Trains until ``epochs`` (total, counting resumed ones) and writes the weights back.

        Args:
          epochs: stop after this many epochs in total, resumed ones included (default the
            spec's ``train.epochs``; learning-rate schedules always follow ``train.epochs``).
          store: a :class:`~nnx_build.training.checkpoint.CheckpointStore`; saved after each epoch.
          resume: continue from the store's latest checkpoint.
          log: a :class:`~nnx_build.training.runlog.RunLog` for every step's and epoch's
            metrics (``metrics.jsonl``, TensorBoard event files).
        """
        epochs = self.plan.train.epochs if epochs is None else epochs
        resumed_from = None
        if resume:
            if store is None:
                raise TrainError("resuming needs a checkpoint directory")
            self.restore(store)
            resumed_from = self.step
        if on_start is not None:
            on_start(self)
        while self.epoch < epochs:
            result = self.run_epoch(on_step, log)
            if store is not None:
                self.save(store)
            if on_epoch is not None:
                on_epoch(result)
        self.write_back()
        return FitResult(epochs=self.epoch, step=self.step, history=list(self.history), resumed_from=resumed_from,
                         data_read=None if self.feed is None else self.feed.to_json())
