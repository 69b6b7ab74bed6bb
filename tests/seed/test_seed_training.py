"""The seed's "Simple Training Loop", as written there, on the Model built from model.yaml."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx


def test_seed_training_loop_on_built_model(model: nnx.Module) -> None:
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

    @nnx.jit  # Automatic state management
    def train_step(model, optimizer, x, y):
        def loss_fn(model):
            y_pred = model(x)  # Call directly
            return ((y_pred - y) ** 2).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)  # In-place updates
        return loss

    # a small synthetic regression problem: 2 -> 3, linear plus noise, 4 batches of 16
    rng = np.random.default_rng(0)
    x_all = rng.standard_normal((64, 2)).astype(np.float32)
    w = rng.standard_normal((2, 3)).astype(np.float32)
    y_all = x_all @ w + 0.5 + 0.01 * rng.standard_normal((64, 3)).astype(np.float32)
    dataloader = [(jnp.asarray(x_all[i : i + 16]), jnp.asarray(y_all[i : i + 16])) for i in range(0, 64, 16)]

    kernel0, mean0 = np.asarray(model.linear.kernel[...]), np.asarray(model.bn.mean[...])
    losses = []
    num_epochs = 13  # 52 steps
    for _epoch in range(num_epochs):
        for x_batch, y_batch in dataloader:
            loss = train_step(model, optimizer, x_batch, y_batch)
            losses.append(float(loss))
            # No need to reassign model/optimizer (stateful!)
    assert np.isfinite(losses).all()
    assert np.mean(losses[-4:]) < 0.5 * np.mean(losses[:4])
    assert int(optimizer.step[...]) == 52
    assert not np.array_equal(model.linear.kernel[...], kernel0)  # parameters updated in place
    assert not np.array_equal(model.bn.mean[...], mean0)  # and the batch statistics
