"""Every trace of a constructor runs with JAX's tracer error text made cheap.

Flax reads ``value.sharding`` on each random draw; on a tracer that raises an
AttributeError whose text walks the whole trace (``DynamicJaxprTracer._origin_msg``), so
a constructor of N layers traced without :func:`cheap_tracer_errors` costs O(N^2): 600
Linears took 25 s to trace abstractly instead of 1 s. These tests count the walks on every
path that traces a constructor: none may take place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from call_count import count_calls
from flax import nnx
from jax._src.interpreters import partial_eval as pe

from nnx_build import pipeline
from nnx_build.builder.module import instantiate_abstract
from nnx_build.sharding import mesh_plan, sharded_instantiate
from nnx_build.weights import model_variables

SPEC = {
    "format": 1,
    "name": "traced_cheaply",
    "inputs": {"x": {"shape": ["batch", 4], "dtype": "float32"}},
    "layers": [{f"l{i}": {"type": "Linear", "in_features": 4, "out_features": 4}} for i in range(3)],
}


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    return count_calls(monkeypatch, pe.DynamicJaxprTracer, "_origin_msg")


def _plain_trace(program: Any) -> None:
    import jax

    from nnx_build.builder.module import instantiate

    jax.jit(lambda: nnx.split(instantiate(program, rngs=nnx.Rngs(0)))[1])()


def _check_then_build(program: Any) -> None:
    pipeline.check(program)
    pipeline.allocate(program, rngs=nnx.Rngs(0))


PATHS: dict[str, Callable[[Any], object]] = {
    "weights.model_variables": model_variables,
    "instantiate_abstract": lambda program: instantiate_abstract(program, rngs=nnx.Rngs(0)),
    "sharded_instantiate": lambda program: sharded_instantiate(program, mesh_plan(program.spec, [("data", 1)]), rngs=nnx.Rngs(0)),
    "check then build": _check_then_build,
}


@pytest.mark.parametrize("path", list(PATHS))
def test_tracing_a_constructor_never_walks_the_trace(path: str, walks: list[int]) -> None:
    PATHS[path](pipeline.compile(SPEC))
    assert walks == []


def test_a_plain_trace_does_walk_it(walks: list[int]) -> None:
    # what the tests above guard against: without the cheap text, each draw walks the trace
    _plain_trace(pipeline.compile(SPEC))
    assert len(walks) >= 3
