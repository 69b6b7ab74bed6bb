"""The initialisers' program split in parts: balanced by draws, every output computed once,
and the constructor traced once for the check and the build."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from call_count import count_calls
from flax import nnx
from jax.extend.core import jaxpr_as_fun

from nnx_build import pipeline
from nnx_build.builder import init_programs, init_trace
from nnx_build.builder.init_programs import draws_per_output, partition, run_in_parts, split_small
from nnx_build.builder.threefry import unrolled_threefry

SPEC = {
    "format": 1,
    "name": "traced_once",
    "inputs": {"x": {"shape": ["batch", 6], "dtype": "float32"}},
    "layers": [
        {"a": {"type": "Linear", "in_features": 6, "out_features": 5}},
        {"b": {"type": "Linear", "in_features": 5, "out_features": 4}},
    ],
}


def _draws(key: jax.Array) -> tuple[jax.Array, ...]:
    k1, k2, k3 = jax.random.split(key, 3)
    return (
        jax.random.normal(k1, (40, 3)),  # one draw each
        jnp.zeros((7,)),  # no draw
        jax.random.uniform(k2, (5,)) * 2.0,
        jax.random.normal(k3, (2, 2)) * 3.0,
        jnp.ones((3,)),
    )


def test_each_output_counts_the_draws_behind_it() -> None:
    closed = jax.make_jaxpr(_draws)(jax.random.key(0))
    assert draws_per_output(closed.jaxpr) == [1, 0, 1, 1, 0]


def test_parts_balance_the_draws_and_hold_every_output_once() -> None:
    costs, sizes = [1, 0, 1, 2, 0], [120, 7, 5, 4, 3]
    groups = partition(costs, sizes, 2)
    assert sorted(i for g in groups for i in g) == [0, 1, 2, 3, 4]
    assert sorted(sum(costs[i] for i in g) for g in groups) == [2, 2]  # {3} and {0, 2}, not by size
    assert {1, 4} <= set(groups[0])  # outputs that draw nothing ride with the first part
    assert partition(costs, sizes, 1) == [[0, 1, 2, 3, 4]]
    assert len(partition(costs, sizes, 8)) == 3  # no empty parts: three outputs draw


def _programs_compiled(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    return count_calls(monkeypatch, jax.stages.Lowered, "compile")


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_parts_compute_the_values_of_the_whole_program(parts: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(init_programs, "MIN_DRAWS_PER_PART", 1)
    compiled = _programs_compiled(monkeypatch)
    key = jax.random.key(3)
    closed = jax.make_jaxpr(_draws)(key)
    whole = jax.jit(_draws)(key)
    outs = run_in_parts(closed, [key], parts=parts, compiler_options={}, lowering=unrolled_threefry)
    assert len(compiled) == parts
    assert len(outs) == len(whole)
    for a, b in zip(outs, whole, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _keyed_draws(key: jax.Array) -> tuple[jax.Array, ...]:
    # as NNX draws: each weight from the stream's key folded with a count, scaled by a
    # standard deviation computed from Python numbers
    return tuple(jax.random.normal(jax.random.fold_in(key, i), (4, 3)) * jnp.sqrt(2.0 / (i + 1)) for i in range(3))


def test_the_scalar_work_before_the_draws_is_split_off() -> None:
    key = jax.random.key(5)
    closed = jax.make_jaxpr(_keyed_draws)(key)
    small, rest = split_small(closed)
    assert small is not None
    names = {e.primitive.name for e in small.jaxpr.eqns}
    assert {"random_fold_in", "sqrt"} <= names
    assert all(v.aval.shape == () for v in small.jaxpr.outvars)  # three keys, three scales
    assert not {"random_fold_in", "sqrt"} & {e.primitive.name for e in rest.jaxpr.eqns}
    assert len(rest.jaxpr.invars) == 1 + len(small.jaxpr.outvars)
    outs = jax.jit(jaxpr_as_fun(rest))(key, *jaxpr_as_fun(small)(key))
    for a, b in zip(outs, jax.jit(_keyed_draws)(key), strict=True):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    only_small = jax.make_jaxpr(lambda k: jax.random.fold_in(k, 1))(key)
    assert split_small(only_small)[1].jaxpr.eqns == []  # nothing left to compile


def test_a_program_of_few_draws_stays_one_part(monkeypatch: pytest.MonkeyPatch) -> None:
    # three draws: a second part would cost a cached run more than it saves a first one
    compiled = _programs_compiled(monkeypatch)
    key = jax.random.key(3)
    outs = run_in_parts(jax.make_jaxpr(_draws)(key), [key], parts=2, compiler_options={}, lowering=unrolled_threefry)
    assert len(compiled) == 1 and len(outs) == 5


def test_check_then_build_traces_the_constructor_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_calls(monkeypatch, init_trace, "instantiate")
    program = pipeline.compile(SPEC)
    pipeline.check(program)
    model = pipeline.allocate(program, rngs=nnx.Rngs(4))
    assert len(calls) == 1
    # a seed other than the spec's (0): the reused trace takes the RNG state as its argument
    hand = nnx.Linear(6, 5, rngs=nnx.Rngs(4))
    np.testing.assert_array_equal(np.asarray(model.a.kernel[...]), np.asarray(hand.kernel[...]))
    pipeline.allocate(program, rngs=nnx.Rngs(4))  # a second build runs the constructor again
    assert len(calls) == 2
    pipeline.check(program)
    pipeline.allocate(pipeline.compile(SPEC), rngs=nnx.Rngs(4))  # another program object: traced anew
    assert len(calls) == 4


def test_a_check_with_errors_leaves_no_trace_to_reuse() -> None:
    from nnx_build.errors import SpecErrors

    bad = {**SPEC, "variables": {"w": {"shape": [5], "init": "orthogonal"}}}  # needs 2-D: fails in the constructor
    program = pipeline.compile(bad)
    with pytest.raises(SpecErrors, match="variable 'w' cannot be constructed"):
        pipeline.check(program)  # the check records the failure and goes on: its trace is incomplete
    with pytest.raises(ValueError, match="at least a 2D shape"):  # the build raises it, not a module without 'w'
        pipeline.allocate(program)
