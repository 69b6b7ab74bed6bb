"""Optimizers, schedules, gradient clipping, losses and metrics by name.

Optimizers, schedules and clipping are optax functions looked up by name in the fixed
lists of :mod:`nnx_build.schemas.train`; their keyword arguments are checked against
the real signatures. Losses and metrics are small functions of ``(prediction, target)``
returning one value per example (mean over the other axes), so a batch's value is the
mean and a held-out split's value is a sum over examples divided by their count.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from ..errors import NnxBuildError, did_you_mean
from ..schemas.train import CLIPS, LOSSES, METRICS, OPTIMIZERS, SCHEDULES

__all__ = [
    "LOSS_FNS",
    "METRIC_FNS",
    "TrainSetupError",
    "check_args",
    "loss_fn",
    "metric_fn",
    "optax_fn",
]


class TrainSetupError(NnxBuildError):
    """A name or argument of the train section that optax or nnx-build does not know."""


def optax_fn(kind: str, name: str) -> Callable[..., Any]:
    """The optax function of an optimizer, schedule or clipping transformation by name."""
    names = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "gradient clipping": CLIPS}[kind]
    if name not in names or not hasattr(optax, name):
        raise TrainSetupError(f"unknown {kind} '{name}'{did_you_mean(name, names)}; expected one of {', '.join(names)}")
    return getattr(optax, name)


def check_args(fn: Callable[..., Any], args: dict[str, Any], what: str) -> list[str]:
    """Problems with calling ``fn(**args)``: unknown and missing keyword arguments."""
    sig = inspect.signature(fn)
    params = {n: p for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    problems = []
    for k in args:
        if k not in params and not takes_kwargs:
            problems.append(f"{what} has no argument '{k}'{did_you_mean(k, params)}; its arguments: {', '.join(params)}")
    for n, p in params.items():
        if p.default is inspect.Parameter.empty and n not in args:
            problems.append(f"{what} needs argument '{n}'")
    return problems


# ---- losses: (prediction, target, **args) -> one value per example ------------------------


def _per_example(x: jax.Array) -> jax.Array:
    x = jnp.asarray(x, jnp.float32)
    return x.reshape(x.shape[0], -1).mean(axis=1) if x.ndim > 1 else x


def mean_squared_error(pred: jax.Array, target: jax.Array) -> jax.Array:
    return _per_example(optax.squared_error(pred, target.astype(pred.dtype)))


def mean_absolute_error(pred: jax.Array, target: jax.Array) -> jax.Array:
    return _per_example(jnp.abs(pred - target.astype(pred.dtype)))


def huber(pred: jax.Array, target: jax.Array, delta: float = 1.0) -> jax.Array:
    return _per_example(optax.huber_loss(pred, target.astype(pred.dtype), delta=delta))


def log_cosh(pred: jax.Array, target: jax.Array) -> jax.Array:
    return _per_example(optax.log_cosh(pred, target.astype(pred.dtype)))


def softmax_cross_entropy(pred: jax.Array, target: jax.Array) -> jax.Array:
    return _per_example(optax.softmax_cross_entropy(pred, target.astype(pred.dtype)))


def softmax_cross_entropy_with_integer_labels(pred: jax.Array, target: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
    labels = target.astype(jnp.int32)
    if label_smoothing:
        onehot = optax.smooth_labels(jax.nn.one_hot(labels, pred.shape[-1], dtype=pred.dtype), label_smoothing)
        return _per_example(optax.softmax_cross_entropy(pred, onehot))
    return _per_example(optax.softmax_cross_entropy_with_integer_labels(pred, labels))


def sigmoid_binary_cross_entropy(pred: jax.Array, target: jax.Array) -> jax.Array:
    return _per_example(optax.sigmoid_binary_cross_entropy(pred, target.astype(pred.dtype)))


def sigmoid_focal_loss(pred: jax.Array, target: jax.Array, alpha: float | None = None, gamma: float = 2.0) -> jax.Array:
    return _per_example(optax.sigmoid_focal_loss(pred, target.astype(pred.dtype), alpha=alpha, gamma=gamma))


def hinge(pred: jax.Array, target: jax.Array) -> jax.Array:
    return _per_example(optax.hinge_loss(pred, target.astype(pred.dtype)))


def cosine_distance(pred: jax.Array, target: jax.Array) -> jax.Array:
    return _per_example(optax.cosine_distance(pred, target.astype(pred.dtype)))


LOSS_FNS: dict[str, Callable[..., jax.Array]] = {
    "mean_squared_error": mean_squared_error,
    "mean_absolute_error": mean_absolute_error,
    "huber": huber,
    "log_cosh": log_cosh,
    "softmax_cross_entropy": softmax_cross_entropy,
    "softmax_cross_entropy_with_integer_labels": softmax_cross_entropy_with_integer_labels,
    "sigmoid_binary_cross_entropy": sigmoid_binary_cross_entropy,
    "sigmoid_focal_loss": sigmoid_focal_loss,
    "hinge": hinge,
    "cosine_distance": cosine_distance,
}
assert set(LOSS_FNS) == set(LOSSES)


# ---- metrics: (prediction, target, **args) -> one value per example ------------------------


def accuracy(pred: jax.Array, target: jax.Array) -> jax.Array:
    guess = jnp.argmax(pred, axis=-1)
    label = jnp.argmax(target, axis=-1) if target.ndim == pred.ndim else target.astype(guess.dtype)
    return _per_example(guess == label)


def top_k_accuracy(pred: jax.Array, target: jax.Array, k: int = 5) -> jax.Array:
    label = jnp.argmax(target, axis=-1) if target.ndim == pred.ndim else target.astype(jnp.int32)
    _, top = jax.lax.top_k(pred, k)
    return _per_example(jnp.any(top == label[..., None], axis=-1))


def binary_accuracy(pred: jax.Array, target: jax.Array, threshold: float = 0.0) -> jax.Array:
    return _per_example((pred > threshold) == (target > 0.5))


METRIC_FNS: dict[str, Callable[..., jax.Array]] = {
    "accuracy": accuracy,
    "top_k_accuracy": top_k_accuracy,
    "binary_accuracy": binary_accuracy,
    "mean_squared_error": mean_squared_error,
    "mean_absolute_error": mean_absolute_error,
}
assert set(METRIC_FNS) == set(METRICS)


def loss_fn(name: str) -> Callable[..., jax.Array]:
    if name not in LOSS_FNS:
        raise TrainSetupError(f"unknown loss '{name}'{did_you_mean(name, LOSS_FNS)}; expected one of {', '.join(LOSS_FNS)}")
    return LOSS_FNS[name]


def metric_fn(name: str) -> Callable[..., jax.Array]:
    if name not in METRIC_FNS:
        raise TrainSetupError(f"unknown metric '{name}'{did_you_mean(name, METRIC_FNS)}; expected one of {', '.join(METRIC_FNS)}")
    return METRIC_FNS[name]


def extra_args(fn: Callable[..., Any]) -> list[str]:
    """Keyword arguments of a loss or metric besides ``(prediction, target)``."""
    return list(inspect.signature(fn).parameters)[2:]
