"""The compiled form of a spec: a :class:`Program` of :class:`Scope` s, each with its
:class:`Graph` s of :class:`Node` s, all frozen data.

:func:`nnx_build.builder.compiler.compile_spec` makes one from a validated spec; the
abstract check (:mod:`.abstract`) and the eager build (:mod:`.module`) read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import registry
from ..schemas.common import Config
from ..schemas.spec import InputSpec, Spec, VariableSpec

__all__ = [
    "MAX_DIM",
    "MAX_REPEAT",
    "MODULE_API",
    "RESERVED",
    "Graph",
    "Node",
    "Program",
    "Scope",
    "all_nodes",
    "class_name",
    "count_modules",
    "modules_problem",
    "unnamed_output",
]

#: names a step may not take: they would shadow nnx.Module's own attributes
RESERVED = frozenset(
    {"train", "eval", "set_attributes", "sow", "perturb", "iter_modules", "iter_children", "set_view"}
)
#: nnx.Module's own methods: a 'call' step may not reach them (they change the module)
MODULE_API = RESERVED | frozenset({"set_mode", "iter_graph", "update", "split", "merge", "state"})
MAX_REPEAT = 100_000
#: largest size of one dimension (XLA's sizes are signed 64-bit)
MAX_DIM = 2**62


@dataclass(frozen=True, eq=False)
class Node:
    """One step, resolved."""

    index: int
    name: str | None
    kind: str  # layer | op | block | call
    type: str
    config: Config | None
    block: Scope | None
    args: tuple[str, ...]
    kwargs: tuple[tuple[str, str], ...]
    outs: tuple[str, ...]
    path: tuple[Any, ...]
    repeat: int | None = None
    scan: bool = False
    kinds: tuple[tuple[str, str], ...] = ()
    sharding: tuple[tuple[str, tuple[str | None, ...]], ...] = ()
    lora: Any = None  # a LoRAOption: wrap this layer's Linear layers (builder/lora.py)
    #: the registry entry of a layer, op or call step (looked up once, here)
    entry: registry.Entry | None = None
    #: with repeat: how many leading inputs each copy passes on to the next (a block's
    #: output count); the inputs after them are given unchanged to every copy
    carried: int | None = None

    @property
    def attr(self) -> str | None:
        """The module attribute this step creates, if any."""
        return self.name if self.kind in ("layer", "block") else None

    @property
    def label(self) -> str:
        return self.name or self.outs[0]

    def inputs(self) -> tuple[str, ...]:
        return (*self.args, *(v for _, v in self.kwargs))


@dataclass(frozen=True, eq=False)
class Graph:
    """One entry point: inputs, the nodes it needs (in order) and outputs."""

    inputs: tuple[str, ...]
    nodes: tuple[Node, ...]
    outputs: tuple[str, ...]
    input_specs: tuple[tuple[str, InputSpec], ...] = ()


@dataclass(frozen=True, eq=False)
class Scope:
    """A module class in the making: variables, submodules and entry points.

    Hashable by content, so it can live in an ``nnx.GraphDef`` as static data.
    """

    key: str
    name: str
    variables: tuple[tuple[str, VariableSpec, tuple[Any, ...]], ...]
    modules: tuple[Node, ...]
    main: Graph
    methods: tuple[tuple[str, Graph], ...]
    kinds: tuple[tuple[str, str], ...]
    path: tuple[Any, ...] = ()
    check_graph: Graph | None = None

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Scope) and other.key == self.key

    def __repr__(self) -> str:
        return f"Scope({self.name})"


@dataclass
class Program:
    spec: Spec
    root: Scope
    kind_classes: dict[str, type]
    dims: dict[str, int] = field(default_factory=dict)


def unnamed_output(type_name: str, index: int) -> str:
    """The name of an unnamed step's output: ``_{type}_{index}``, e.g. ``_relu_2``.

    ``index`` is the step's position in its ``layers:`` list counting from 0; a method's
    steps continue the count after the model's (and earlier methods') steps.
    """
    return f"_{type_name}_{index}"


def class_name(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in name.split("_") if p) or "Model"


def count_modules(scope: Scope, memo: dict[str, int] | None = None) -> int:
    """Module instances ``scope`` unrolls to: each layer and block use, times ``repeat`` unless scanned."""
    memo = {} if memo is None else memo
    if scope.key in memo:
        return memo[scope.key]
    total = 0
    for node in scope.modules:
        one = 1 + (count_modules(node.block, memo) if node.block is not None else 0)
        total += one * (node.repeat if node.repeat is not None and not node.scan else 1)
    memo[scope.key] = total
    return total


def all_nodes(scope: Scope, seen: set[str] | None = None) -> list[Node]:
    """Every layer and block step of ``scope`` and of the blocks it uses (each block once)."""
    seen = set() if seen is None else seen
    if scope.key in seen:
        return []
    seen.add(scope.key)
    out: list[Node] = []
    for n in scope.modules:
        out.append(n)
        if n.block is not None:
            out.extend(all_nodes(n.block, seen))
    return out


def modules_problem(root: Scope, max_modules: int) -> tuple[str, tuple[Any, ...]] | None:
    """When ``root`` unrolls to more than ``max_modules`` module instances: the message's
    start (the caller adds how to raise the limit) and the path of the longest repeat."""
    n_modules = count_modules(root)
    if n_modules <= max_modules:
        return None
    repeated = [n for n in all_nodes(root) if n.repeat is not None and not n.scan]
    where = max(repeated, key=lambda n: n.repeat).path if repeated else ()  # type: ignore[arg-type, return-value]
    return (
        f"spec unrolls to {n_modules:,} module instances (each layer and block use, times repeat), "
        f"over the limit of {max_modules:,}; stack long repeats with 'scan: true',",
        where,
    )
