"""The weights a build computed, kept beside the compilation cache and mapped by the next
build of the same program and seed: the same values, never another program's."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from call_count import count_calls
from flax import nnx
from state_bytes import state_bytes

from nnx_build import pipeline
from nnx_build.builder import allocation, init_cache
from nnx_build.compile_cache import ENV, configured


def _spec(bias: float = 0.5, seed: int = 3) -> dict[str, Any]:
    return {
        "format": 1,
        "name": "kept",
        "seed": seed,
        "inputs": {"x": {"shape": ["batch", 6]}},
        "layers": [
            {"a": {"type": "Linear", "in_features": 6, "out_features": 16, "bias_init": {"type": "constant", "value": bias}}},
            {"bn": {"type": "BatchNorm", "num_features": 16}},
            {"b": {"type": "Linear", "in_features": 16, "out_features": 3}},
        ],
    }


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The command line's cache on, in a folder of the test's own; yields the weights' folder."""
    monkeypatch.setenv(ENV, str(tmp_path / "cache"))
    with configured() as path:
        assert path is not None
        yield path / "init-weights"


@pytest.fixture
def computed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the builds whose initialisers ran (not read from the cache)."""
    return count_calls(monkeypatch, allocation, "run_in_parts")


def _build(spec: dict[str, Any], seed: int | None = None) -> nnx.Module:
    return pipeline.allocate(pipeline.compile(spec), rngs=nnx.Rngs(spec["seed"] if seed is None else seed))


def test_a_second_build_maps_the_weights_the_first_computed(cache: Path, computed: list[int]) -> None:
    first = _build(_spec())
    second = _build(_spec())
    assert len(computed) == 1
    assert len(list(cache.glob("*.weights"))) == 1
    assert state_bytes(second) == state_bytes(first)
    with pytest.MonkeyPatch.context() as mp:  # and both are what the build computes without the cache
        mp.delenv(init_cache.ENV)
        assert state_bytes(_build(_spec())) == state_bytes(first)


def test_another_seed_or_constant_is_another_entry(cache: Path, computed: list[int]) -> None:
    base = state_bytes(_build(_spec()))
    other_seed = state_bytes(_build(_spec(), seed=4))
    other_bias = state_bytes(_build(_spec(bias=0.25)))
    assert len(computed) == 3
    assert other_seed != base and other_bias != base
    assert len(list(cache.glob("*.weights"))) == 3


@pytest.mark.parametrize("damage", ["truncated", "garbled", "another-shape"])
def test_an_entry_that_does_not_fit_is_computed_again(cache: Path, computed: list[int], damage: str) -> None:
    first = state_bytes(_build(_spec()))
    (entry,) = cache.glob("*.weights")
    data = entry.read_bytes()
    if damage == "truncated":
        entry.write_bytes(data[: len(data) // 2])
    elif damage == "garbled":
        entry.write_bytes(b"{not json" + data[9:])
    else:
        entry.write_bytes(data.replace(b'"shape": [6, 16]', b'"shape": [16, 6]', 1))
    assert state_bytes(_build(_spec())) == first
    assert len(computed) == 2
    _build(_spec())  # written again, read back
    assert len(computed) == 2


def test_weights_over_the_limit_are_not_kept(cache: Path, computed: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(init_cache, "MAX_ENTRY_BYTES", 100)
    _build(_spec())
    _build(_spec())
    assert len(computed) == 2 and not list(cache.glob("*.weights"))


def test_the_folder_keeps_the_entries_used_last(cache: Path, computed: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    _build(_spec(), seed=1)
    (one,) = cache.glob("*.weights")
    monkeypatch.setattr(init_cache, "MAX_FOLDER_BYTES", 2 * one.stat().st_size)
    _build(_spec(), seed=2)
    import os

    os.utime(one, (1, 1))  # seed 1 used long ago
    os.utime(next(p for p in cache.glob("*.weights") if p != one), (2, 2))
    _build(_spec(), seed=3)  # a third entry: the oldest goes
    assert len(list(cache.glob("*.weights"))) == 2 and not one.exists()


def test_a_program_calling_back_into_python_is_not_kept(cache: Path) -> None:
    def draw(key: jax.Array) -> jax.Array:
        noise = jax.pure_callback(lambda: np.float32(np.random.default_rng().normal()), jax.ShapeDtypeStruct((), jnp.float32))
        return jax.random.normal(key, (3,)) + noise

    key = jax.random.key(0)
    assert init_cache.key(jax.make_jaxpr(draw)(key), [key], {}) is None
    assert init_cache.key(jax.make_jaxpr(lambda k: jax.random.normal(k, (3,)))(key), [key], {}) is not None


def test_the_cache_off_keeps_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, computed: list[int]) -> None:
    monkeypatch.setenv(ENV, str(tmp_path / "cache"))
    with configured(enabled=False):
        _build(_spec())
        _build(_spec())
    assert len(computed) == 2 and not (tmp_path / "cache").exists()


def test_mapped_weights_train_and_the_entry_stays_as_written(cache: Path) -> None:
    _build(_spec())
    (entry,) = cache.glob("*.weights")
    digest = hashlib.sha256(entry.read_bytes()).hexdigest()
    model = _build(_spec())
    optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
    x = jnp.linspace(-1, 1, 8 * 6, dtype=jnp.float32).reshape(8, 6)

    @nnx.jit(donate_argnums=(0, 1))
    def step(model: nnx.Module, optimizer: nnx.Optimizer) -> jax.Array:
        loss, grads = nnx.value_and_grad(lambda m: (m(x) ** 2).mean())(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer)) for _ in range(3)]
    assert losses[-1] < losses[0]
    assert hashlib.sha256(entry.read_bytes()).hexdigest() == digest
