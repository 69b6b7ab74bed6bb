"""How steps refer to each other: the names a step declares and reads, and the graph of
an entry point (cycles reported; only the steps its outputs need, in dependency order)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..schemas.spec import InputSpec, Step
from .program import Graph, Node

__all__ = ["Report", "declared_outs", "make_graph", "ref_paths", "topo_order"]

#: ``err(code, message, path)``: records a located problem
Report = Callable[[str, str, tuple[Any, ...]], None]


def declared_outs(step: Step) -> tuple[str, ...]:
    """The names a step gives its outputs (``as:``, else its name), known before it compiles."""
    if step.as_ is not None:
        return (step.as_,) if isinstance(step.as_, str) else tuple(step.as_)
    return (step.name,) if step.name else ()


def ref_paths(step: Step, node: Node, spath: tuple[Any, ...]) -> list[tuple[str, tuple[Any, ...]]]:
    """Each input a step reads, with the path of the ``in:`` entry that names it."""
    if step.in_ is None:
        return [(ref, spath) for ref in node.inputs()]
    if isinstance(step.in_, str):
        return [(step.in_, (*spath, "in"))]
    if isinstance(step.in_, list):
        return [(ref, (*spath, "in", i)) for i, ref in enumerate(step.in_)]
    return [(ref, (*spath, "in", k)) for k, ref in step.in_.items()]


def make_graph(
    inputs: Any,
    nodes: list[Node] | tuple[Node, ...],
    outputs: tuple[str, ...],
    input_specs: list[tuple[str, InputSpec]],
    err: Report,
) -> Graph:
    """The entry point computing ``outputs``: the nodes they need, in dependency order.

    A cycle among ``nodes`` is reported through ``err(code, message, path)``.
    """
    producer: dict[str, Node] = {}
    for n in nodes:
        for o in n.outs:
            producer.setdefault(o, n)  # a duplicate name is reported once, not as a cycle too
    state: dict[int, int] = {}  # 1 = visiting, 2 = done

    def visit(node: Node, chain: list[Node]) -> None:
        s = state.get(node.index)
        if s == 2:
            return
        if s == 1:
            cyc = chain[[c.index for c in chain].index(node.index):] + [node]
            err("cycle", "steps form a cycle: " + " -> ".join(c.label for c in cyc) + "; a step may not depend on its own output", node.path)
            return
        state[node.index] = 1
        for ref in node.inputs():
            if ref in producer:
                visit(producer[ref], [*chain, node])
        state[node.index] = 2

    for n in nodes:
        visit(n, [])
    # demand-driven: only the nodes the outputs need run (a method runs part of the graph)
    needed: set[int] = set()
    stack = [producer[o] for o in outputs if o in producer]
    while stack:
        n = stack.pop()
        if n.index in needed:
            continue
        needed.add(n.index)
        stack.extend(producer[r] for r in n.inputs() if r in producer)
    order = [n for n in nodes if n.index in needed]
    return Graph(tuple(inputs), tuple(topo_order(order)), tuple(outputs), tuple(input_specs))


def topo_order(nodes: list[Node]) -> list[Node]:
    """Topological order that keeps spec order wherever dependencies allow."""
    produced_by = {o: n.index for n in nodes for o in n.outs}
    done: set[int] = set()
    out: list[Node] = []
    remaining = list(nodes)
    while remaining:
        for i, n in enumerate(remaining):
            deps = {produced_by[r] for r in n.inputs() if r in produced_by}
            if deps <= done | {n.index} and n.index not in deps:
                out.append(n)
                done.add(n.index)
                del remaining[i]
                break
        else:  # a cycle (already reported): keep spec order
            out.extend(remaining)
            break
    return out
