"""Weights initialised by a few compiled programs (one per core, compiled side by side): the
same values as hand-written NNX code drawing from the same Rngs, however many parts, and
not one program per variable shape.
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from nnx_build import pipeline

# shapes no other test uses, so no program is already in this process' jit caches
SPEC = {
    "format": 1,
    "name": "compiled_init",
    "seed": 11,
    "inputs": {"x": {"shape": [2, 9, 9, 3], "dtype": "float32"}},
    "layers": [
        {"conv": {"type": "Conv", "in_features": 3, "out_features": 13, "kernel_size": [3, 3]}},
        {"bn": {"type": "BatchNorm", "num_features": 13}},
        "relu",
        {"conv2": {"type": "Conv", "in_features": 13, "out_features": 17, "kernel_size": [1, 1], "use_bias": False}},
        "flatten",
        {"fc": {"type": "Linear", "in_features": 9 * 9 * 17, "out_features": 7}},
        {"head": {"type": "Linear", "in_features": 7, "out_features": 5, "kernel_init": {"type": "normal", "stddev": 0.3}}},
    ],
}


class Hand(nnx.Module):
    """The spec written by hand, as flax documents it."""

    def __init__(self, rngs: nnx.Rngs):
        self.conv = nnx.Conv(3, 13, (3, 3), rngs=rngs)
        self.bn = nnx.BatchNorm(13, rngs=rngs)
        self.conv2 = nnx.Conv(13, 17, (1, 1), use_bias=False, rngs=rngs)
        self.fc = nnx.Linear(9 * 9 * 17, 7, rngs=rngs)
        self.head = nnx.Linear(7, 5, kernel_init=nnx.initializers.normal(0.3), rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.relu(self.bn(self.conv(x)))
        return self.head(self.fc(self.conv2(x).reshape(x.shape[0], -1)))


@pytest.fixture(scope="module")
def lowered() -> Iterator[list[str]]:
    """Names of the programs JAX lowers while the fixture's user runs (persistent-cache hits included)."""
    events: list[str] = []

    def listen(event: str, duration: float, **kwargs: object) -> None:
        if event == "/jax/core/compile/jaxpr_to_mlir_module_duration":
            events.append(str(kwargs.get("fun_name", "?")))

    jax.monitoring.register_event_duration_secs_listener(listen)
    yield events
    jax.monitoring.unregister_event_duration_listener(listen)


@pytest.fixture(scope="module", params=[1, 3], ids=["one-part", "three-parts"])
def built(request: pytest.FixtureRequest, lowered: list[str]) -> tuple[nnx.Module, list[str]]:
    """The module built in ``request.param`` programs (four weights draw: 3 parts hold 2, 1 and 1)."""
    from nnx_build.builder import allocation, init_programs

    program = pipeline.compile(SPEC)
    rngs = nnx.Rngs(11)
    before = len(lowered)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(allocation, "init_parts", lambda: request.param)
        mp.setattr(init_programs, "MIN_DRAWS_PER_PART", 1)  # four draws: split them all the same
        model = pipeline.allocate(program, rngs=rngs)
    return model, lowered[before:]


def _raw(v: nnx.Variable) -> np.ndarray:
    value = v.get_value()
    if jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
        value = jax.random.key_data(value)
    return np.asarray(value)


def test_values_are_those_of_hand_written_nnx(built: tuple[nnx.Module, list[str]]) -> None:
    model, _ = built
    hand = Hand(nnx.Rngs(11))
    fb = nnx.to_flat_state(nnx.state(model))
    fh = nnx.to_flat_state(nnx.state(hand))
    assert [p for p, _ in fb] == [p for p, _ in fh]
    for (path, vb), (_, vh) in zip(fb, fh, strict=True):
        assert type(vb) is type(vh) and vb.shape == vh.shape and vb.dtype == vh.dtype, path
        assert _raw(vb).tobytes() == _raw(vh).tobytes(), path
    x = jnp.asarray(np.linspace(-1, 1, 2 * 9 * 9 * 3, dtype=np.float32).reshape(2, 9, 9, 3))
    model.eval(), hand.eval()
    try:
        np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(hand(x)))
    finally:
        model.train(), hand.train()


def test_one_program_per_part_initialises_every_variable(built: tuple[nnx.Module, list[str]], request: pytest.FixtureRequest) -> None:
    # built eagerly, each initialiser and shape is a program of its own (a dozen here); the
    # scalar work before the draws (each draw's key, a standard deviation) runs eagerly, one
    # program per primitive however many weights there are (lowered by the first build only)
    _, programs = built
    parts = request.node.callspec.params["built"]
    init = [p for p in programs if p.startswith("jit(init")]
    assert len(init) == parts, programs
    scalar = [p for p in programs if not p.startswith("jit(init")]
    assert len(scalar) == len(set(scalar)), programs


def test_the_module_stays_an_ordinary_eager_module(built: tuple[nnx.Module, list[str]]) -> None:
    model = nnx.clone(built[0])
    assert all(isinstance(v.get_value(), jax.Array) for _, v in nnx.to_flat_state(nnx.state(model)))
    model.head = nnx.Linear(7, 2, rngs=nnx.Rngs(0))  # surgery
    x = jnp.ones((2, 9, 9, 3))
    optimizer = nnx.Optimizer(model, optax.sgd(1e-3), wrt=nnx.Param)

    @nnx.jit
    def step(model: nnx.Module, optimizer: nnx.Optimizer) -> jax.Array:
        loss, grads = nnx.value_and_grad(lambda m: (m(x) ** 2).mean())(model)
        optimizer.update(model, grads)
        return loss

    first = step(model, optimizer)
    assert model(x).shape == (2, 2)
    assert float(step(model, optimizer)) < float(first)


def test_every_initializer_gives_its_eager_values_under_the_init_options() -> None:
    # the compile options of the initialisation (no algebraic simplifier, LLVM level 2)
    # keep each initializer's values those of running it eagerly, bit for bit
    from nnx_build.builder.allocation import INIT_COMPILER_OPTIONS
    from nnx_build.schemas.common import INITIALIZERS, to_initializer

    jobs = []
    for name in INITIALIZERS:
        args = {"constant": {"value": 0.5}, "variance_scaling": {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"}}
        init = to_initializer({"type": name, **args[name]} if name in args else name)
        shape = (3, 3, 4, 6) if name == "delta_orthogonal" else (5, 7)
        for dtype in (jnp.float32, jnp.bfloat16) if name in ("normal", "lecun_normal") else (jnp.float32,):
            jobs.append((name, init, shape, dtype))
    keys = list(jax.random.split(jax.random.key(5), len(jobs)))
    eager = [np.asarray(init(k, shape, dtype)) for (_, init, shape, dtype), k in zip(jobs, keys, strict=True)]

    def all_at_once(keys: list[jax.Array]) -> list[jax.Array]:
        return [init(k, shape, dtype) for (_, init, shape, dtype), k in zip(jobs, keys, strict=True)]

    compiled = jax.jit(all_at_once).lower(keys).compile(compiler_options=INIT_COMPILER_OPTIONS)(keys)
    differ = [f"{name} {dtype.__name__}" for (name, *_, dtype), a, b in zip(jobs, eager, compiled, strict=True) if a.tobytes() != np.asarray(b).tobytes()]
    assert not differ
