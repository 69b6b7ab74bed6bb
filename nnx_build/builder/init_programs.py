"""The initialisers' program, split in parts compiled side by side on the machine's cores.

XLA compiles one program on one core (its passes run over the whole module in turn); a
model's initialisers are one draw per weight, independent of each other once the keys are
derived. :func:`run_in_parts` traces nothing itself: it takes the traced program (a closed
jaxpr), splits its outputs into parts of about equal compile cost (the number of random
draws behind each; at least :data:`MIN_DRAWS_PER_PART` draws a part), keeps in each part only the equations its outputs need, and compiles
the parts in threads (compilation releases Python's lock). Each output is computed by the
same operations as in the whole program, so the values are the same; the shared scalar
work (deriving keys, counting draws) is repeated in each part.
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["MAX_PARTS", "MIN_DRAWS_PER_PART", "SMALL", "available_cores", "draws_per_output", "partition", "run_in_parts", "split_small"]

# beyond a few parts, lowering each part and the threads' start-up outweigh the gain
MAX_PARTS = 4
# A part costs a cached run about 0.1 s (lowering its glue, loading one more executable) and
# saves a first run about 35 ms of compilation per draw it takes off the others: with fewer
# than 16 draws a part (ViT-B/16 and GPT-2 have 8-10 in all, ResNet-50 54) it is not worth it.
MIN_DRAWS_PER_PART = 16

# an equation whose outputs have at most this many elements each (scalars, and raw keys of
# two words), and whose inputs are the program's inputs or such outputs, is computed
# eagerly before the programs compile
SMALL = 2

# primitives that draw random bits (typed keys; the raw-key hash)
_DRAWS = frozenset({"random_bits", "threefry2x32"})


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def _draws_in(eqn: Any) -> int:
    from jax.extend.core import jaxprs_in_params

    own = 1 if eqn.primitive.name in _DRAWS else 0
    return own + sum(_draws_in(e) for j in jaxprs_in_params(eqn.params) for e in j.eqns)


def draws_per_output(jaxpr: Any) -> list[int]:
    """For each output of ``jaxpr``, about how many random draws compute it: the draws of
    the equation that makes it plus the most of any of its inputs (the key chain behind a
    weight draws nothing itself, so a weight counts its own draws once)."""
    cost: dict[Any, int] = {}
    for eqn in jaxpr.eqns:
        here = _draws_in(eqn) + max((cost.get(v, 0) for v in eqn.invars if not hasattr(v, "val")), default=0)
        for v in eqn.outvars:
            cost[v] = here
    return [0 if hasattr(v, "val") else cost.get(v, 0) for v in jaxpr.outvars]


def partition(costs: Sequence[int], sizes: Sequence[int], parts: int) -> list[list[int]]:
    """Output indices in at most ``parts`` groups of about equal summed cost (then size), each
    in ascending order; outputs that cost nothing join the first group. Empty groups are dropped."""
    groups: list[list[int]] = [[] for _ in range(max(1, parts))]
    load = [(0, 0)] * len(groups)
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], -sizes[i])):
        if costs[i] == 0:
            groups[0].append(i)
            continue
        g = min(range(len(groups)), key=lambda g: load[g])
        groups[g].append(i)
        load[g] = (load[g][0] + costs[i], load[g][1] + sizes[i])
    return [sorted(g) for g in groups if g]


def run_in_parts(
    closed: Any,
    args: Sequence[Any],
    *,
    parts: int,
    compiler_options: Mapping[str, str | bool | int | float],
    lowering: Callable[[], Any],
    name: str = "init",
) -> list[Any]:
    """The outputs of ``closed`` (a ``ClosedJaxpr``) applied to ``args``, computed by up to
    ``parts`` programs compiled concurrently. ``lowering()`` is a context manager entered
    while each part lowers (the Threefry rule, see :mod:`.threefry`). Each part's program is
    dispatched as soon as it is compiled; the outputs are not waited for."""
    import jax
    from jax.extend.core import ClosedJaxpr, jaxpr_as_fun

    small, closed = split_small(closed)
    if small is not None:
        args = [*args, *jaxpr_as_fun(small)(*args)]  # eagerly, one primitive at a time
    groups = _groups(closed, parts)

    def program(jaxpr: Any, index: int, args: Sequence[Any]) -> Any:
        fn = jaxpr_as_fun(ClosedJaxpr(jaxpr, closed.consts))
        fn.__name__ = fn.__qualname__ = f"{name}_{index}_of_{len(groups)}" if len(groups) > 1 else name
        with lowering():
            return jax.jit(fn).lower(*args)

    if len(groups) == 1:
        return list(program(closed.jaxpr, 0, args).compile(compiler_options=compiler_options)(*args))
    from jax._src.interpreters.partial_eval import dce_jaxpr

    n_out = len(closed.jaxpr.outvars)
    outs: list[Any] = [None] * n_out
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(groups), thread_name_prefix="nnx-build-init") as pool:
        futures = []
        for k, group in enumerate(groups):  # lowering holds Python's lock: one part at a time,
            chosen = set(group)  # while the parts before it compile
            sub, used = dce_jaxpr(closed.jaxpr, [i in chosen for i in range(n_out)], instantiate=False)
            part_args = [a for a, u in zip(args, used, strict=True) if u]
            lowered = program(sub, k, part_args)
            futures.append((group, pool.submit(lambda lowered=lowered, a=part_args: lowered.compile(compiler_options=compiler_options)(*a))))
        for group, future in futures:
            for i, value in zip(group, future.result(), strict=True):
                outs[i] = value
    return outs


def split_small(closed: Any) -> tuple[Any, Any]:
    """``closed`` as two programs: ``small``, the equations that compute only small values
    (outputs of at most :data:`SMALL` elements) from the inputs and each other, and
    ``rest``, the others. ``rest`` takes the inputs of ``closed`` followed by the outputs of
    ``small`` (the values it uses), and returns what ``closed`` returns. ``small`` is None
    when there is nothing to take out. Equations with effects stay in ``rest``.
    """
    import math

    from jax.extend.core import ClosedJaxpr, Jaxpr, Literal

    jaxpr = closed.jaxpr
    known = set(jaxpr.invars) | set(jaxpr.constvars)
    small, rest = [], []
    for eqn in jaxpr.eqns:
        inputs_known = all(isinstance(v, Literal) or v in known for v in eqn.invars)
        if inputs_known and not eqn.effects and all(math.prod(getattr(v.aval, "shape", ())) <= SMALL for v in eqn.outvars):
            small.append(eqn)
            known.update(eqn.outvars)
        else:
            rest.append(eqn)
    made = {v for eqn in small for v in eqn.outvars}
    needed = [*(v for eqn in rest for v in eqn.invars), *jaxpr.outvars]
    passed = list(dict.fromkeys(v for v in needed if not isinstance(v, Literal) and v in made))
    if not passed:
        return None, closed
    info = jaxpr.debug_info.with_unknown_names()  # other inputs and outputs than the traced function's
    first = ClosedJaxpr(Jaxpr(jaxpr.constvars, jaxpr.invars, passed, small, debug_info=info), closed.consts)
    second = ClosedJaxpr(Jaxpr(jaxpr.constvars, [*jaxpr.invars, *passed], jaxpr.outvars, rest, jaxpr.effects, info), closed.consts)
    return first, second


def _groups(closed: Any, parts: int) -> list[list[int]]:
    import math

    if parts <= 1:
        return [list(range(len(closed.jaxpr.outvars)))]
    try:
        from jax._src.interpreters.partial_eval import dce_jaxpr  # noqa: F401  (the split needs it)
    except ImportError:
        return [list(range(len(closed.jaxpr.outvars)))]
    sizes = [math.prod(getattr(v.aval, "shape", ())) for v in closed.jaxpr.outvars]
    costs = draws_per_output(closed.jaxpr)
    return partition(costs, sizes, min(parts, MAX_PARTS, max(1, sum(costs) // MIN_DRAWS_PER_PART)))
