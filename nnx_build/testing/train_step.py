"""The ``train_step:`` check of a spec test case: a few optimiser steps lower the loss.

It uses the training tables and train step of ``nnx-build train``
(:data:`nnx_build.training.LOSSES`, :func:`nnx_build.training.make_train_step`).
"""

from __future__ import annotations

from typing import Any

from ..text import first_line

__all__ = ["check_train_step"]


def check_train_step(run: Any, graph: Any, inputs: dict[str, Any]) -> None:
    """``train_step:``: a few optimiser steps on random targets lower the loss on the same batch.

    Dropout is switched off (BatchNorm keeps batch statistics) so the losses compare.
    ``run`` is the case's run (:class:`~nnx_build.testing.checks.CaseRun`): its session,
    case, ``fail`` and ``notes``.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from ..training import LOSSES, make_train_step
    from ..training.objectives import lookup
    from ..training.registry import optax_fn

    ts = run.case.train_step
    assert ts is not None
    model = nnx.clone(run.s.model(run.seed))
    model.train()
    model.set_attributes(deterministic=True, raise_if_not_found=False)  # dropout off: comparable losses
    names = list(graph.outputs)
    which = ts.output or names[0]
    if which not in names:
        run.fail("train_step", f"no output '{which}'; the outputs are: {', '.join(names)}", at=("train_step", "output"))
        return
    pick = names.index(which)
    method = run.case.method

    def forward(m: Any, inputs: dict[str, Any]) -> Any:
        fn = m if method is None else getattr(m, method)
        out = fn(**inputs)
        return out[pick] if isinstance(out, tuple) and len(names) > 1 else out

    probe = jax.eval_shape(lambda: forward(nnx.clone(model), inputs))
    rng = np.random.default_rng(run.case.data_seed + 1)
    loss = lookup(LOSSES, ts.loss)  # the loss table `train` uses ("mse", "cross_entropy" are aliases)
    if loss.target == "labels":
        target = jnp.asarray(rng.integers(0, probe.shape[-1], size=probe.shape[:-1]), jnp.int32)
    else:
        target = jnp.asarray(rng.standard_normal(probe.shape), jnp.float32)
    step = make_train_step(
        model,
        lambda m, b: {"loss": loss.fn(forward(m, b["inputs"]).astype(jnp.float32), b["target"])},
        optax_fn("optimizer", ts.optimizer)(learning_rate=ts.learning_rate),
    )
    state, data, losses = step.init(), {"inputs": inputs, "target": target}, []
    try:
        # steps + 1 calls: the last returns the loss after `steps` updates (its own update is not looked at)
        for _ in range(ts.steps + 1):
            state, values = step(state, data)
            losses.append(values["loss"])
    except Exception as e:  # noqa: BLE001
        run.fail("train_step", f"the training step raised {first_line(e, with_type=True)}")
        return
    before, after = losses[0], losses[-1]
    before, after = float(before), float(after)
    steps = f"{ts.steps} {ts.optimizer} step{'s' if ts.steps != 1 else ''} at learning rate {ts.learning_rate:g}"
    if not (np.isfinite(before) and np.isfinite(after)):
        run.fail("train_step", f"the {ts.loss} loss is not finite: {before} before, {after} after {steps}")
    elif not after < before:
        run.fail("train_step", f"the {ts.loss} loss did not go down: {before:.6g} before, {after:.6g} after {steps}")
    else:
        run.notes.append(f"{ts.loss} loss {before:.4g} -> {after:.4g}")
