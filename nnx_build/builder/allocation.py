"""Allocating a built module's weights: every initialiser in a few compiled programs.

:func:`allocate` is what the pipeline calls; :func:`instantiate_compiled` builds the same
module as :func:`~nnx_build.builder.module.instantiate`, bit for bit, with one program per
core instead of one per variable shape.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
from flax import nnx

from ..text import first_line
from . import init_cache
from .init_programs import available_cores, run_in_parts
from .init_trace import trace_init
from .module import BuiltModule, instantiate
from .program import Program
from .threefry import unrolled_threefry

__all__ = ["INIT_COMPILER_OPTIONS", "allocate", "init_parts", "instantiate_compiled"]


def instantiate_compiled(program: Program, *, rngs: nnx.Rngs) -> BuiltModule:
    """What :func:`instantiate` builds (same seed, same values, ``rngs`` advanced the same),
    with the initialisers compiled as one program per core (:func:`init_parts`, side by
    side: :mod:`.init_programs`) instead of one small program per variable shape: the
    constructor is traced once (:func:`~.init_trace.trace_init`, the check's trace when it
    ran first) and its state, computed by the programs, is merged back into an ordinary
    eager module. With the command line's cache on, a second build of the same program
    and seed maps the state computed the first time (:mod:`.init_cache`).

    The programs are compiled without XLA's algebraic simplifier: built eagerly, each
    initialiser's operations are separate programs, and the simplifier, seeing them
    together, would fold ``normal(key) * stddev`` into one multiplication by
    ``sqrt(2) * stddev`` and change the last bit of some weights. Its run time is small
    either way. It is also compiled at LLVM optimisation level 2 instead of 3, which
    takes about 40% less compile time for the same values (level 0 would change the
    last bit: it contracts no multiply-add). Random bits are drawn with Threefry's
    unrolled lowering (see :mod:`.threefry`). A constructor that cannot be traced (it
    reads a weight's value in Python) is built eagerly instead, with :func:`instantiate`.
    """
    graphdef_r, state_r = nnx.split(rngs)
    if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(state_r)):
        return instantiate(program, rngs=rngs)  # inside a transform (nnx.jit, vmap): it compiles the whole
    try:
        trace = trace_init(program, rngs)
    except jax.errors.JAXTypeError:  # tracer leaks, concretization: not traceable
        return instantiate(program, rngs=rngs)
    args = jax.tree.leaves(state_r)
    name = init_cache.key(trace.closed, args, INIT_COMPILER_OPTIONS)  # None: nothing kept
    outs = init_cache.load(name, trace.closed.out_avals) if name is not None else None
    if outs is None:
        outs = run_in_parts(trace.closed, args, parts=init_parts(), compiler_options=INIT_COMPILER_OPTIONS, lowering=unrolled_threefry)
        if name is not None:
            init_cache.store(name, jax.block_until_ready(outs))  # running out of memory raises here
    state, after = jax.tree.unflatten(jax.tree.structure(trace.out_shape), outs)
    nnx.update(rngs, after)
    return nnx.merge(trace.graphdef, state)


def init_parts() -> int:
    """How many programs the initialisers compile as, side by side: one per core this
    process may use (at most ``init_programs.MAX_PARTS``)."""
    return available_cores()


# the values of weights initialised eagerly, op by op, in less compile time (see instantiate_compiled)
INIT_COMPILER_OPTIONS: dict[str, str | bool | int | float] = {"xla_disable_hlo_passes": "algsimp", "xla_backend_optimization_level": 2}


def allocate(
    program: Program,
    *,
    rngs: nnx.Rngs,
    nbytes: int | None = None,
    make: Callable[[], BuiltModule] | None = None,
) -> BuiltModule:
    """``instantiate`` (or ``make()``), waiting for the weights, with running out of memory a typed error.

    JAX allocates asynchronously: without the wait an allocation failure would surface
    later, from whatever touches the weights first. ``make`` builds the module another way
    (on a device mesh: :func:`nnx_build.sharding.sharded_instantiate`).
    """
    from ..errors import OutOfMemoryError

    try:
        model = instantiate_compiled(program, rngs=rngs) if make is None else make()
        jax.block_until_ready(jax.tree.leaves(nnx.state(model)))
    except (MemoryError, jax.errors.JaxRuntimeError) as e:
        text = first_line(e).rstrip(".")
        if not isinstance(e, MemoryError) and "memory" not in text.lower() and "RESOURCE_EXHAUSTED" not in text:
            raise
        need = f" ({nbytes:,} bytes of variables)" if nbytes is not None else ""
        raise OutOfMemoryError(
            f"out of memory allocating the weights of '{program.spec.name}'{need}: {text}; "
            "pass a lower --max-bytes (or 'max_bytes:' in the spec) to refuse such specs before allocating"
        ) from None
    return model
