"""The constructor traced once: the program of every initialiser, for the check and the build.

The abstract check needs the module's shapes; the compiled build needs the program that
initialises its weights. Both come from one trace of the constructor with the RNG state as
the argument (:func:`trace_init`): the shapes are its outputs' shapes, the program its
jaxpr. ``nnx-build SPEC`` checks, then builds the same program with the same kind of RNG
state (any seed): the check keeps its trace, and the build takes it.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any

import jax
from flax import nnx

from .module import instantiate
from .program import Program
from .tracer_errors import cheap_tracer_errors

__all__ = ["InitTrace", "forget", "trace_init"]


@dataclass(frozen=True)
class InitTrace:
    """The constructor of a program, traced with RNG state of one structure.

    ``closed`` maps the leaves of the RNG state to the leaves of ``out_shape``: the module's
    state and the RNG state after every draw. ``graphdef`` is the module's structure.
    """

    closed: Any  # jax.extend.core.ClosedJaxpr
    out_shape: Any  # (state, rng state) of jax.ShapeDtypeStruct
    graphdef: Any  # nnx.GraphDef of the module
    rng_graphdef: Any  # nnx.GraphDef of the RNG state it takes

    def abstract(self) -> Any:
        """The module with ``jax.ShapeDtypeStruct``s for values, as ``nnx.eval_shape`` makes it."""
        return nnx.merge(self.graphdef, self.out_shape[0])


# the trace the check kept for the build that follows, while its program is alive
_LAST: tuple[weakref.ref[Program], InitTrace] | None = None
_LOCK = threading.Lock()


def trace_init(program: Program, rngs: nnx.Rngs, *, keep: bool = False) -> InitTrace:
    """The constructor of ``program`` traced with ``rngs``' state as the argument (its values
    are not read: only its structure, shapes and dtypes).

    ``keep=True`` (the check) remembers the trace for the next call: if that call is for the
    same program object with RNG state of the same structure (the build), it gets the trace
    back instead of running the constructor again. A remembered trace is handed out once:
    building a program twice runs its constructor twice, as building eagerly does (a spec
    test's ``deterministic`` check builds twice to compare).

    Raises what the constructor raises; a constructor that reads a weight's value in
    Python raises one of ``jax.errors.JAXTypeError``.
    """
    global _LAST
    graphdef_r, state_r = nnx.split(rngs)
    with _LOCK:
        last, _LAST = _LAST, None
    if last is not None and last[0]() is program and last[1].rng_graphdef == graphdef_r:
        return last[1]
    box: dict[str, Any] = {}

    def create(state_r: Any) -> Any:
        r = nnx.merge(graphdef_r, state_r)
        box["graphdef"], state = nnx.split(instantiate(program, rngs=r))
        return state, nnx.state(r)

    with cheap_tracer_errors():
        closed, out_shape = jax.make_jaxpr(create, return_shape=True)(state_r)
    trace = InitTrace(closed, out_shape, box["graphdef"], graphdef_r)
    if keep:
        with _LOCK:
            _LAST = (weakref.ref(program), trace)
    return trace


def forget() -> None:
    """Drops the remembered trace (a constructor whose trace recorded errors is not reused)."""
    global _LAST
    with _LOCK:
        _LAST = None
