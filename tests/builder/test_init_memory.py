"""Compiled initialisation draws random bits with Threefry's unrolled lowering: the same
values as the eager build, and no temporaries the size of each weight (the loop JAX
lowers on CPU keeps about five such buffers live per draw)."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
import pytest
from flax import nnx
from state_bytes import state_bytes

from nnx_build import pipeline
from nnx_build.builder.init_programs import available_cores
from nnx_build.builder.module import instantiate
from nnx_build.builder.threefry import unrolled_threefry

# shapes no other test uses; a scanned stack of blocks, whose stacked weights are the largest
SPEC = {
    "format": 1,
    "name": "init_memory",
    "seed": 5,
    "inputs": {"x": {"shape": [2, 48], "dtype": "float32"}},
    "blocks": {
        "Block": {
            "inputs": ["x"],
            "layers": [
                {"up": {"type": "Linear", "in_features": 48, "out_features": 176, "in": "x"}},
                "gelu",
                {"down": {"type": "Linear", "in_features": 176, "out_features": 48}},
                {"out": {"type": "add", "in": ["x", "down"]}},
            ],
        }
    },
    "layers": [
        {"embed": {"type": "Linear", "in_features": 48, "out_features": 48, "kernel_init": {"type": "normal", "stddev": 0.02}}},
        {"blocks": {"type": "Block", "repeat": 6, "scan": True}},
        {"norm": {"type": "LayerNorm", "num_features": 48}},
    ],
}


@pytest.fixture(scope="module")
def compiled_init(request: pytest.FixtureRequest) -> tuple[nnx.Module, list[Any]]:
    """The module built by ``allocate`` and the memory analysis of each program compiled meanwhile."""
    analyses: list[Any] = []
    original = jax.stages.Lowered.compile

    def compile(self: jax.stages.Lowered, *args: Any, **kwargs: Any) -> Any:
        compiled = original(self, *args, **kwargs)
        analyses.append(compiled.memory_analysis())
        return compiled

    mp = pytest.MonkeyPatch()
    mp.setattr(jax.stages.Lowered, "compile", compile)
    try:
        model = pipeline.allocate(pipeline.compile(SPEC), rngs=nnx.Rngs(5))
    finally:
        mp.undo()
    return model, analyses


def test_values_equal_the_eager_build(compiled_init: tuple[nnx.Module, list[Any]]) -> None:
    model, _ = compiled_init
    eager = instantiate(pipeline.compile(SPEC), rngs=nnx.Rngs(5))  # one program per draw, JAX's own lowering
    assert state_bytes(model) == state_bytes(eager)


def test_init_program_needs_no_weight_sized_temporaries(compiled_init: tuple[nnx.Module, list[Any]]) -> None:
    model, analyses = compiled_init
    largest = max(np.asarray(v.get_value()).nbytes for _, v in nnx.to_flat_state(nnx.state(model)))
    assert largest == 6 * 48 * 176 * 4  # the stacked up/down kernels
    assert 1 <= len(analyses) <= available_cores(), "allocate compiles one program per core at most"
    total = sum(np.asarray(v.get_value()).nbytes for _, v in nnx.to_flat_state(nnx.state(model)))
    assert sum(a.output_size_in_bytes for a in analyses) >= total
    # with the rolled loop: 5 buffers of the largest draw (about 1 MB here)
    assert max(a.temp_size_in_bytes for a in analyses) < largest // 4, [a.temp_size_in_bytes for a in analyses]


def test_jax_lowering_is_restored_afterwards() -> None:
    def draw(shape: tuple[int, ...]) -> Any:
        return jax.jit(lambda key: jax.random.normal(key, shape))  # a new function: no lowering cached for it

    key = jax.random.key(0)
    with unrolled_threefry():
        inside = draw((64, 64)).lower(key).as_text()
        a = draw((64, 32))(key)
    after = draw((64, 64)).lower(key).as_text()
    assert "stablehlo.while" not in inside
    assert "stablehlo.while" in after  # JAX's CPU lowering again outside the block
    np.testing.assert_array_equal(np.asarray(a), np.asarray(draw((64, 32))(key)))
