"""JAX's tracer error text made cheap while a constructor is traced (see :func:`cheap_tracer_errors`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["cheap_tracer_errors"]


@contextlib.contextmanager
def cheap_tracer_errors() -> Iterator[None]:
    """Makes JAX's tracer error text O(1) while a constructor is traced.

    Flax reads ``value.sharding`` on each RNG draw; on a tracer that raises an
    AttributeError whose message walks the whole trace, so building N layers
    abstractly costs O(N^2) (1,000 repeated Linears: minutes). The message is only
    text; without its origin part the build is linear.
    """
    try:
        from jax._src.interpreters import partial_eval as pe

        cls = pe.DynamicJaxprTracer
        original = cls.__dict__.get("_origin_msg")
    except (ImportError, AttributeError):
        yield
        return
    if original is None:
        yield
        return
    cls._origin_msg = lambda self: ""  # type: ignore[method-assign]
    try:
        yield
    finally:
        cls._origin_msg = original  # type: ignore[method-assign]
