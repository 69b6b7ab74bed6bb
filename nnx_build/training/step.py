"""The one train step: ``nnx-build train`` and the spec tests' ``train_step`` check both use it.

:func:`make_train_step` splits a model once into its graph definition, its RNG state,
the variables that train (``wrt``) and the rest (batch statistics, frozen kinds), and
returns a :class:`TrainStep`: a pure ``jax.jit`` function ``(state, data, idx) ->
(state, values)`` that merges them inside the trace, runs ``objective``, takes
``jax.value_and_grad`` of the mean ``"loss"`` and applies the optax update. Nothing is
split or merged per step outside the compiled function.

Dropout keys are the model's initial RNG keys folded with the step counter (RNG counts
reset every step), so the state needs no RNG checkpointing and a resumed run draws the
same masks.

Example:
  >>> import optax
  >>> from flax import nnx
  >>> model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
  >>> def objective(m, batch):
  ...     return {"loss": ((m(batch["x"]) - batch["y"]) ** 2).mean(axis=-1)}
  >>> step = make_train_step(model, objective, optax.sgd(0.1))
  >>> state = step.init()
  >>> data = {"x": jnp.ones((4, 2)), "y": jnp.zeros((4, 1))}
  >>> state, values = step(state, data)          # one update on all of data
  >>> int(state.step)
  1
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from ..fastpath import weight_key

__all__ = ["Objective", "TrainState", "TrainStep", "make_train_step"]

#: ``objective(module, batch) -> {"loss": per-example values, other name: per-example values}``
Objective = Callable[[Any, dict[str, jax.Array]], dict[str, jax.Array]]


class TrainState(NamedTuple):
    """What changes from step to step (a pytree of arrays; flat ``{"path/to/var": array}`` dicts)."""

    params: dict[str, jax.Array]
    rest: dict[str, jax.Array]
    opt_state: Any
    rngs: dict[str, jax.Array]
    step: jax.Array


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


def _batch(data: dict[str, Any], idx: Any) -> dict[str, Any]:
    return dict(data) if idx is None else {k: jnp.take(v, idx, axis=0) for k, v in data.items()}


class TrainStep:
    """A jitted train step (and eval step) over one split of a model; see :func:`make_train_step`.

    Attributes:
      kinds: the names of the variable kinds that train (what ``wrt`` matched in this model).
      param_keys: the flat keys of the variables that train.
    """

    def __init__(self, model: nnx.Module, objective: Objective, tx: optax.GradientTransformation, *, wrt: Any = nnx.Param):
        self.model, self.objective, self.tx, self.wrt = model, objective, tx, wrt
        self.graphdef, rng_state, params_state, rest_state = nnx.split(model, nnx.RngState, wrt, ...)
        eval_model = nnx.clone(model)
        eval_model.eval()
        self.eval_graphdef = nnx.split(eval_model, nnx.RngState, wrt, ...)[0]
        self.rng_flat, self.params_flat, self.rest_flat = _Flat(rng_state), _Flat(params_state), _Flat(rest_state)
        self.param_keys = tuple(self.params_flat.keys)
        self.kinds = tuple(sorted({type(v).__name__ for _, v in self.params_flat.items}))
        self.rng_kinds = {
            k: "key" if isinstance(v, nnx.RngKey) else "count" if isinstance(v, nnx.RngCount) else "other"
            for k, (_, v) in zip(self.rng_flat.keys, self.rng_flat.items, strict=True)
        }
        self.batch_sharding: Any = None  # with a mesh: how each batch array is split (nnx_build.sharding)
        self._step = jax.jit(self._train)
        self._eval = jax.jit(self._evaluate)

    # ---- state -------------------------------------------------------------------------

    def init(self) -> TrainState:
        """The model's current variables, a fresh optimizer state, step 0."""
        params = self.params_flat.arrays()
        return TrainState(params, self.rest_flat.arrays(), self.tx.init(params), self.rng_flat.arrays(), jnp.asarray(0, jnp.uint32))

    def merge(self, state: TrainState, *, train: bool = True) -> Any:
        """A module (train or eval mode) holding ``state``'s variables."""
        graphdef = self.graphdef if train else self.eval_graphdef
        return nnx.merge(graphdef, self.rng_flat.state(state.rngs), self.params_flat.state(state.params), self.rest_flat.state(state.rest))

    def write_back(self, state: TrainState, model: nnx.Module | None = None) -> None:
        """Puts ``state``'s variables into ``model`` (default the model the step was made from)."""
        target = self.model if model is None else model
        nnx.update(target, self.params_flat.state(state.params), self.rest_flat.state(state.rest))

    # ---- the pure functions -----------------------------------------------------------------

    def _shard(self, batch: dict[str, Any]) -> dict[str, Any]:
        if self.batch_sharding is None:
            return batch
        return {k: jax.lax.with_sharding_constraint(v, self.batch_sharding(v.ndim)) for k, v in batch.items()}

    def _train(self, state: TrainState, data: dict[str, Any], idx: Any) -> tuple[TrainState, dict[str, Any]]:
        batch = self._shard(_batch(data, idx))
        rngs = _reseed(state.rngs, self.rng_kinds, state.step)

        def loss_fn(params: dict[str, Any]) -> Any:
            module = nnx.merge(self.graphdef, self.rng_flat.state(rngs), self.params_flat.state(params), self.rest_flat.state(state.rest))
            values = self.objective(module, batch)
            _, _, _, new_rest = nnx.split(module, nnx.RngState, self.wrt, ...)
            new_rest = {weight_key(p): v.get_value() for p, v in nnx.to_flat_state(new_rest)}
            return jnp.mean(values["loss"]), (new_rest, {k: jnp.mean(v) for k, v in values.items()})

        (_, (new_rest, values)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        values = {**values, "grad_norm": optax.tree.norm(grads)}
        return TrainState(params, new_rest, opt_state, state.rngs, state.step + 1), values

    def _evaluate(self, state: TrainState, data: dict[str, Any], idx: Any, mask: Any) -> dict[str, Any]:
        module = self.merge(state, train=False)
        values = self.objective(module, self._shard(_batch(data, idx)))
        return {k: jnp.sum(v * mask) for k, v in values.items()}

    @property
    def compiled(self) -> Any:
        """The jitted pure train function ``(state, data, idx) -> (state, values)``."""
        return self._step

    # ---- calls ------------------------------------------------------------------------------

    def __call__(self, state: TrainState, data: dict[str, Any], idx: Any = None) -> tuple[TrainState, dict[str, Any]]:
        """One update on the rows ``idx`` of ``data`` (all of it if None).

        Returns the new state and the batch means of the objective's values *before* the update.
        """
        return self._step(state, data, None if idx is None else jnp.asarray(idx))

    def evaluate(self, state: TrainState, data: dict[str, Any], idx: Any, mask: Any) -> dict[str, Any]:
        """Sums over the rows ``idx`` of ``data`` (all of it if None), weighted by ``mask``, of the
        objective's values, in eval mode."""
        return self._eval(state, data, None if idx is None else jnp.asarray(idx), jnp.asarray(mask))

    def output_shapes(self, data: dict[str, Any], call: Callable[[Any, dict[str, Any]], Any]) -> Any:
        """``jax.eval_shape`` of ``call(module, batch)`` on ``data`` (no compute)."""
        state = TrainState(self.params_flat.arrays(), self.rest_flat.arrays(), None, self.rng_flat.arrays(), jnp.asarray(0, jnp.uint32))
        return jax.eval_shape(lambda s, d: call(self.merge(s, train=False), d), state, data)


def make_train_step(
    model: nnx.Module, objective: Objective, tx: optax.GradientTransformation, *, wrt: Any = nnx.Param
) -> TrainStep:
    """The train step of ``model``: a :class:`TrainStep` (``init()``, ``step(state, data, idx)``).

    Args:
      model: the module, in the mode it trains in (``model.train()``, dropout as wanted);
        it is split once, here, and not changed until :meth:`TrainStep.write_back`.
      objective: ``objective(module, batch) -> {"loss": values, name: values}``, each value an
        array with one entry per example (or a scalar); the step minimises the mean ``"loss"``
        and returns the batch mean of every value.
      tx: the optax transformation.
      wrt: an NNX filter of the variables that train (default ``nnx.Param`` and its subkinds).
    """
    return TrainStep(model, objective, tx, wrt=wrt)
