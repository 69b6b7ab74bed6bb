"""The training loop on the fast path: split the model once, run pure ``jax.jit`` steps.

The model is split once into a graph definition (one in train mode, one in eval mode),
its RNG state, the variables that train (``wrt``) and the rest (batch statistics,
frozen kinds). One jitted pure function ``step(params, rest, opt_state, rngs, step,
data, idx)`` merges them, runs the forward, takes the gradient with ``jax.value_and_grad``
and applies the optax update; nothing is split or merged per step outside the trace
(``nnx.jit`` would do that on every call).

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
from ..fastpath import weight_key
from .data import Dataset, epoch_order
from .plan import Plan

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

    @property
    def train(self) -> dict[str, float]:
        return dict(self.history[-1]["train"]) if self.history else {}

    @property
    def eval(self) -> dict[str, float]:
        return dict(self.history[-1]["eval"]) if self.history else {}

    def to_json(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "step": self.step, "train": self.train, "eval": self.eval}


class _Flat:
    """A state as a flat ``{"path/to/var": array}`` dict, and back."""

    def __init__(self, state: Any):
        self.items = list(nnx.to_flat_state(state))
        self.keys = [weight_key(p) for p, _ in self.items]

    def arrays(self) -> dict[str, Any]:
        return {k: v.get_value() for k, (_, v) in zip(self.keys, self.items, strict=True)}

    def state(self, arrays: dict[str, Any]) -> Any:
        return nnx.from_flat_state([(p, v.replace(arrays[k])) for k, (p, v) in zip(self.keys, self.items, strict=True)])


def _reseed(rng: dict[str, Any], kinds: dict[str, str], step: Any) -> dict[str, Any]:
    out = {}
    for k, v in rng.items():
        if kinds[k] == "key":
            out[k] = jax.random.fold_in(v, step)
        elif kinds[k] == "count":
            out[k] = jnp.zeros_like(v)
        else:
            out[k] = v
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
        train_model = nnx.clone(model)
        train_model.train()
        self.gd_train, rng_state, params_state, rest_state = nnx.split(train_model, nnx.RngState, plan.wrt, ...)
        eval_model = nnx.clone(model)
        eval_model.eval()
        self.gd_eval = nnx.split(eval_model, nnx.RngState, plan.wrt, ...)[0]
        self.rng_flat, self.params_flat, self.rest_flat = _Flat(rng_state), _Flat(params_state), _Flat(rest_state)
        if not self.params_flat.keys:
            raise TrainError(
                f"no variable of kind {', '.join(plan.wrt_names)} to train (wrt); the model's variables are "
                + ", ".join(sorted({type(v).__name__ for _, v in nnx.to_flat_state(nnx.state(model, nnx.Not(nnx.RngState)))}))
            )
        self.rng_kinds = {
            k: "key" if isinstance(v, nnx.RngKey) else "count" if isinstance(v, nnx.RngCount) else "other"
            for k, (_, v) in zip(self.rng_flat.keys, self.rng_flat.items, strict=True)
        }
        self.params = self.params_flat.arrays()
        self.rest = self.rest_flat.arrays()
        self.rngs = self.rng_flat.arrays()
        n_train = len(data.train_idx)
        self.batch_size = min(t.batch_size, n_train)
        self.steps_per_epoch = n_train // self.batch_size
        self.eval_batch_size = min(t.eval_batch_size or t.batch_size, max(1, len(data.eval_idx)))
        self.device_data = {k: jnp.asarray(v) for k, v in data.arrays.items()}
        self.step = 0
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.tx: Any = None
        self.opt_state: Any = None
        self._train_step: Any = None
        self._eval_step: Any = None

    # ---- the pure functions -----------------------------------------------------------

    def _outputs_and_values(self, module: Any, batch: dict[str, Any]) -> dict[str, Any]:
        plan = self.plan
        outs = module(*(batch[n] for n in plan.inputs))
        outs = outs if isinstance(outs, tuple) else (outs,)
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

    def _make_steps(self) -> None:
        import optax

        # the schedule follows the spec's train.epochs, whatever epoch a run stops at
        self.tx = self.plan.make_tx(self.steps_per_epoch, self.plan.train.epochs)
        gd_train, gd_eval = self.gd_train, self.gd_eval
        params_flat, rest_flat, rng_flat, rng_kinds = self.params_flat, self.rest_flat, self.rng_flat, self.rng_kinds
        wrt = self.plan.wrt
        tx = self.tx

        def train_step(params, rest, opt_state, rngs, step, data, idx):
            batch = {k: jnp.take(v, idx, axis=0) for k, v in data.items()}
            rngs = _reseed(rngs, rng_kinds, step)

            def loss_fn(params):
                module = nnx.merge(gd_train, rng_flat.state(rngs), params_flat.state(params), rest_flat.state(rest))
                values = self._outputs_and_values(module, batch)
                _, _, _, new_rest = nnx.split(module, nnx.RngState, wrt, ...)
                new_rest = {weight_key(p): v.get_value() for p, v in nnx.to_flat_state(new_rest)}
                return jnp.mean(values["loss"]), (new_rest, {k: jnp.mean(v) for k, v in values.items()})

            (_, (new_rest, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            return params, new_rest, opt_state, metrics

        def eval_step(params, rest, rngs, data, idx, mask):
            batch = {k: jnp.take(v, idx, axis=0) for k, v in data.items()}
            module = nnx.merge(gd_eval, rng_flat.state(rngs), params_flat.state(params), rest_flat.state(rest))
            values = self._outputs_and_values(module, batch)
            return {k: jnp.sum(v * mask) for k, v in values.items()}

        self._train_step = jax.jit(train_step)
        self._eval_step = jax.jit(eval_step)

    def init_optimizer(self) -> None:
        self._make_steps()
        self.opt_state = self.tx.init(self.params)

    # ---- checkpoints ----------------------------------------------------------------------

    def weights(self) -> dict[str, Any]:
        """Every non-RNG variable, flat: the trained ones and the rest."""
        return {**self.params, **self.rest}

    def checkpoint_meta(self) -> dict[str, Any]:
        t = self.plan.train
        return {"format": 1, "step": self.step, "epoch": self.epoch, "history": self.history,
                "wrt": list(self.plan.wrt_names), "seed": t.seed, "batch_size": self.batch_size,
                "steps_per_epoch": self.steps_per_epoch}

    def save(self, store: Any) -> None:
        store.save(self.step, self.weights(), jax.tree.leaves(self.opt_state), self.checkpoint_meta())

    def restore(self, store: Any, step: int | None = None) -> None:
        leaves, treedef = jax.tree.flatten(self.opt_state)
        weights, opt_leaves, meta = store.restore(step, self.weights(), leaves)
        if meta.get("steps_per_epoch") not in (None, self.steps_per_epoch):
            raise TrainError(
                f"the checkpoint was written with {meta['steps_per_epoch']} steps per epoch, this run has "
                f"{self.steps_per_epoch}: the data or batch size changed, so resuming would not continue the same run"
            )
        self.params = {k: jnp.asarray(weights[k]) for k in self.params}
        self.rest = {k: jnp.asarray(weights[k]) for k in self.rest}
        self.opt_state = jax.tree.unflatten(treedef, [jnp.asarray(x) for x in opt_leaves])
        self.step = int(meta["step"])
        self.epoch = int(meta["epoch"])
        self.history = list(meta.get("history", []))

    def write_back(self) -> None:
        """Puts the current weights into the caller's model."""
        nnx.update(self.model, self.params_flat.state(self.params), self.rest_flat.state(self.rest))

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
            out = self._eval_step(self.params, self.rest, self.rngs, self.device_data, jnp.asarray(idx), jnp.asarray(mask))
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v)
        return {k: sums[k] / len(idx_all) for k in self.plan.metric_keys}

    def run_epoch(self, on_step: Callable[[int, dict[str, Any]], None] | None = None) -> EpochResult:
        t0 = time.perf_counter()
        t = self.plan.train
        order = epoch_order(self.data.train_idx, t.seed, self.epoch, t.shuffle)
        b = self.batch_size
        totals: dict[str, Any] = {}
        for i in range(self.steps_per_epoch):
            idx = jnp.asarray(order[i * b : (i + 1) * b])
            self.params, self.rest, self.opt_state, metrics = self._train_step(
                self.params, self.rest, self.opt_state, self.rngs, jnp.asarray(self.step, jnp.uint32), self.device_data, idx
            )
            self.step += 1
            for k, v in metrics.items():
                totals[k] = totals.get(k, 0.0) + v
            if on_step is not None:
                on_step(i + 1, metrics)
        train = {k: float(totals[k]) / self.steps_per_epoch for k in self.plan.metric_keys}
        if not all(np.isfinite(v) for v in train.values()):
            raise TrainError(f"epoch {self.epoch + 1}: the loss is not finite ({train}); lower the learning rate or clip gradients")
        evaluation = self.evaluate()
        self.epoch += 1
        result = EpochResult(self.epoch, self.step, train, evaluation, time.perf_counter() - t0)
        self.history.append(result.to_json())
        return result

    def fit(
        self,
        epochs: int | None = None,
        *,
        store: Any = None,
        resume: bool = False,
        on_step: Callable[[int, dict[str, Any]], None] | None = None,
        on_epoch: Callable[[EpochResult], None] | None = None,
        on_start: Callable[[Trainer], None] | None = None,
    ) -> FitResult:
        """Trains until ``epochs`` (total, counting resumed ones) and writes the weights back.

        Args:
          epochs: stop after this many epochs in total, resumed ones included (default the
            spec's ``train.epochs``; learning-rate schedules always follow ``train.epochs``).
          store: a :class:`~nnx_build.training.checkpoint.CheckpointStore`; saved after each epoch.
          resume: continue from the store's latest checkpoint.
        """
        epochs = self.plan.train.epochs if epochs is None else epochs
        self.init_optimizer()
        resumed_from = None
        if resume:
            if store is None:
                raise TrainError("resuming needs a checkpoint directory")
            self.restore(store)
            resumed_from = self.step
        if on_start is not None:
            on_start(self)
        while self.epoch < epochs:
            result = self.run_epoch(on_step)
            if store is not None:
                self.save(store)
            if on_epoch is not None:
                on_epoch(result)
        self.write_back()
        return FitResult(epochs=self.epoch, step=self.step, history=list(self.history), resumed_from=resumed_from)
