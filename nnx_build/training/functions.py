"""Losses and metrics: ``fn(prediction, target, **args)`` -> one value per example.

Each value is the mean over the example's other axes, so a batch's value is the mean
and a held-out split's value is a sum over examples divided by their count. The names
and descriptions are in :mod:`nnx_build.training.objectives` (the table the schema reads).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

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
