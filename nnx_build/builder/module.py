"""The eager module a spec becomes, and the graph interpreter its methods run.

Each named layer or block is an attribute, created eagerly in spec order with one
shared ``nnx.Rngs`` (as hand-written NNX code does). ``__call__`` and every method
look their submodules up on the instance at call time, so replacing
``model.linear`` by attribute assignment changes what runs.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from ..errors import NnxBuildError, SpecError
from ..schemas.common import to_dtype, to_initializer
from ..text import first_line
from .program import Graph, Node, Program, Scope
from .unroll import run_unrolled, unrolling

__all__ = [
    "BuiltModule",
    "CheckContext",
    "Poison",
    "checking",
    "instantiate",
    "instantiate_abstract",
    "module_class",
]


# ---- check mode: shape errors become located SpecErrors -----------------------------


class Poison:
    """Stands for the output of a step that failed in check mode."""

    def __repr__(self) -> str:
        return "<failed>"


@dataclass
class CheckContext:
    """Collects errors and output shapes while the forward runs abstractly."""

    locate: Callable[[tuple[Any, ...]], Any]
    errors: list[SpecError] = field(default_factory=list)
    shapes: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    depth: int = 0


_CHECK: contextvars.ContextVar[CheckContext | None] = contextvars.ContextVar("nnx_build_check", default=None)
_KINDS: contextvars.ContextVar[dict[str, type]] = contextvars.ContextVar("nnx_build_kinds", default={})  # noqa: B039  (never mutated: replaced whole with .set)


@contextlib.contextmanager
def checking(locate: Callable[[tuple[Any, ...]], Any]) -> Iterator[CheckContext]:
    """Check mode: inside, construction and forward failures become located errors.

    Every failure is appended to the yielded context's ``errors`` (the failed step's
    output is a :class:`Poison`) instead of being raised; the forward runs every step
    (``Scope.check_graph``) and records each top-level step's output shape.
    """
    ctx = CheckContext(locate=locate)
    token = _CHECK.set(ctx)
    try:
        yield ctx
    finally:
        _CHECK.reset(token)


def _shape_str(x: Any) -> str:
    if isinstance(x, tuple | list):
        return ", ".join(_shape_str(v) for v in x)
    if hasattr(x, "shape"):
        return f"({', '.join(str(d) for d in x.shape)}) {x.dtype}"
    return type(x).__name__


# ---- building ------------------------------------------------------------------------


def _make_variable(var: Any, kinds: dict[str, type], rngs: nnx.Rngs) -> nnx.Variable:
    cls = kinds[var.kind]
    dtype = to_dtype(var.dtype) or jnp.float32
    init = to_initializer(var.init)
    value = init(rngs.params(), tuple(var.shape), dtype)
    variable = cls(value)
    if var.sharding:
        if len(var.sharding) != len(value.shape):
            raise _SpecIssue(
                "bad-shape",
                f"sharding names {len(var.sharding)} axes, but the variable has shape {tuple(value.shape)}; "
                "give one logical axis (or null) per dimension",
            )
        # logical axis names only: placing them on a mesh is the job of the sharded build
        variable.set_metadata(out_sharding=tuple(var.sharding))
    return variable


def _set_kinds_and_sharding(module: Any, node: Node, kinds: dict[str, type]) -> None:
    for vpath, kind in node.kinds:
        owner, attr = _owner(module, vpath, node)
        old = getattr(owner, attr)
        cls = kinds[kind]
        if not isinstance(old, nnx.Variable):
            raise _SpecIssue("unknown-variable", f"'{vpath}' of step '{node.name}' is not a variable")
        setattr(owner, attr, cls(old.get_value(), **old.get_metadata()))
    for vpath, axes in node.sharding:
        owner, attr = _owner(module, vpath, node)
        var = getattr(owner, attr)
        if len(axes) != len(var.shape):
            raise _SpecIssue(
                "bad-shape",
                f"sharding for '{vpath}' of step '{node.name}' names {len(axes)} axes, but the variable has shape {tuple(var.shape)}",
            )
        var.set_metadata(out_sharding=tuple(axes))


def _variable_paths(module: Any) -> list[str]:
    return [".".join(str(p) for p in path) for path, _ in nnx.iter_graph(module) if path and isinstance(_, nnx.Variable)]


def _owner(module: Any, vpath: str, node: Node) -> tuple[Any, str]:
    from ..errors import did_you_mean

    *parents, attr = vpath.split(".")
    owner = module
    for p in parents:
        owner = getattr(owner, p, None)
    if owner is None or not isinstance(getattr(owner, attr, None), nnx.Variable):
        choices = _variable_paths(module)
        raise _SpecIssue(
            "unknown-variable",
            f"step '{node.name}' ({node.type}) has no variable '{vpath}'{did_you_mean(vpath, choices)}; its variables: {', '.join(choices)}",
        )
    return owner, attr


class _SpecIssue(NnxBuildError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _make_one(node: Node, kinds: dict[str, type], rngs: nnx.Rngs) -> Any:
    if node.kind == "block":
        assert node.block is not None
        return _with_lora(module_class(node.block)(node.block, rngs=rngs), node, rngs)
    module = node.entry.fn(node.config, rngs=rngs)  # type: ignore[union-attr]
    if node.kinds or node.sharding:
        _set_kinds_and_sharding(module, node, kinds)
    return _with_lora(module, node, rngs)


def _with_lora(module: Any, node: Node, rngs: nnx.Rngs) -> Any:
    if node.lora is None:
        return module
    from .lora import apply_lora

    try:
        return apply_lora(module, node.lora, rngs, f"step '{node.name}' ({node.type})")
    except ValueError as e:
        raise _SpecIssue("bad-value", str(e)) from None


def _make_module(node: Node, kinds: dict[str, type], rngs: nnx.Rngs) -> Any:
    if node.repeat is None:
        return _make_one(node, kinds, rngs)
    if not node.scan or node.repeat == 0:
        return nnx.List([_make_one(node, kinds, rngs) for _ in range(node.repeat)])

    @nnx.split_rngs(splits=node.repeat)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def create(r: nnx.Rngs) -> Any:
        return _make_one(node, kinds, r)

    return create(rngs)


class BuiltModule(nnx.Module):
    """Base class of every module nnx-build builds (one subclass per spec or block).

    Attributes are created in spec order: declared variables, then layers and blocks.
    """

    def __init__(self, scope: Scope, *, rngs: nnx.Rngs):
        self.nnx_build_scope = scope
        kinds = _KINDS.get()
        for name, var, vpath in scope.variables:
            _guarded(self, name, vpath, f"variable '{name}'", lambda var=var: _make_variable(var, kinds, rngs))
        for node in scope.modules:
            _guarded(self, node.name, node.path, f"step '{node.name}' ({node.type})", lambda node=node: _make_module(node, kinds, rngs))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        scope = self.nnx_build_scope
        graph = scope.check_graph if _CHECK.get() is not None and scope.check_graph is not None else scope.main
        return run_graph(self, graph, args, kwargs)


def _guarded(module: Any, name: Any, path: tuple[Any, ...], what: str, make: Callable[[], Any]) -> None:
    """Sets ``module.name = make()``; in check mode a failure becomes a located error."""
    ctx = _CHECK.get()
    if ctx is None:
        setattr(module, name, make())
        return
    try:
        setattr(module, name, make())
    except _SpecIssue as e:
        ctx.errors.append(SpecError(e.code, str(e), ctx.locate(path), path))
    except SpecError as e:
        ctx.errors.append(e)
    except Exception as e:  # a constructor refusing its arguments
        ctx.errors.append(SpecError("invalid-layer", f"{what} cannot be constructed: {first_line(e)}", ctx.locate(path), path))



_CLASSES: dict[str, type[BuiltModule]] = {}


def module_class(scope: Scope) -> type[BuiltModule]:
    """The BuiltModule subclass for ``scope``, with one real method per spec method."""
    cls = _CLASSES.get(scope.key)
    if cls is not None:
        return cls
    ns: dict[str, Any] = {"__module__": "nnx_build.models", "__doc__": f"Module built from spec '{scope.name}'."}
    for mname, graph in scope.methods:
        ns[mname] = _make_method(mname, graph)
    cls = type(scope.name, (BuiltModule,), ns)
    _CLASSES[scope.key] = cls
    return cls


def _make_method(name: str, graph: Graph) -> Callable[..., Any]:
    def method(self: BuiltModule, *args: Any, **kwargs: Any) -> Any:
        return run_graph(self, graph, args, kwargs)

    method.__name__ = name
    method.__qualname__ = name
    method.__doc__ = f"Spec method '{name}': ({', '.join(graph.inputs)}) -> ({', '.join(graph.outputs)})."
    return method


def instantiate(program: Program, *, rngs: nnx.Rngs) -> BuiltModule:
    """Builds the eager module of a compiled program."""
    token = _KINDS.set(program.kind_classes)
    try:
        return module_class(program.root)(program.root, rngs=rngs)
    finally:
        _KINDS.reset(token)


def instantiate_abstract(program: Program, *, rngs: nnx.Rngs, keep: Callable[[tuple[Any, ...]], bool] = lambda path: False) -> BuiltModule:
    """The module of ``program`` with no weight initialised: every variable abstract (a
    ``jax.ShapeDtypeStruct``, to be filled from a checkpoint) except its RNG state and the
    variables whose state path ``keep`` selects, which hold what :func:`instantiate` with
    ``rngs`` gives them (same seed, same values; ``rngs`` advances as it would).

    The constructor runs once under ``jax.jit`` returning only those values, so XLA drops
    every other initialiser: no weight is ever computed.
    """
    graphdef_r, state_r = nnx.split(rngs)
    box: dict[str, Any] = {}

    def create(state_r: Any) -> Any:
        r = nnx.merge(graphdef_r, state_r)
        graphdef, state = nnx.split(instantiate(program, rngs=r))
        flat = list(nnx.to_flat_state(state))
        box["graphdef"] = graphdef
        # the variables are made again outside the trace: kind, metadata and shape only
        box["flat"] = [(p, type(v), v.get_metadata(), jax.ShapeDtypeStruct(v.get_value().shape, v.get_value().dtype)) for p, v in flat]
        real = [v.get_value() for p, v in flat if isinstance(v, nnx.RngState) or keep(p)]
        return real, nnx.state(r)

    from .tracer_errors import cheap_tracer_errors

    with cheap_tracer_errors():
        real, after = jax.jit(create)(state_r)
    nnx.update(rngs, after)
    values = iter(real)
    flat = []
    for p, cls, metadata, shape in box["flat"]:
        # logical axis names set afterwards, as the build sets them: a Variable made with them is placed on a mesh
        var = cls(next(values) if issubclass(cls, nnx.RngState) or keep(p) else shape, **{k: m for k, m in metadata.items() if k != "out_sharding"})
        if "out_sharding" in metadata:
            var.set_metadata(out_sharding=metadata["out_sharding"])
        flat.append((p, var))
    return nnx.merge(box["graphdef"], nnx.from_flat_state(flat))


# ---- running -------------------------------------------------------------------------


def run_graph(module: BuiltModule, graph: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if len(args) > len(graph.inputs):
        raise TypeError(f"{type(module).__name__} takes {len(graph.inputs)} input(s) ({', '.join(graph.inputs)}), received {len(args)}")
    env: dict[str, Any] = dict(zip(graph.inputs, args, strict=False))
    for k, v in kwargs.items():
        if k not in graph.inputs:
            raise TypeError(f"unexpected input '{k}'; inputs are {', '.join(graph.inputs)}")
        env[k] = v
    missing = [n for n in graph.inputs if n not in env]
    if missing:
        raise TypeError(f"missing input(s): {', '.join(missing)}")
    for name, _, _ in module.nnx_build_scope.variables:
        env[name] = getattr(module, name)[...]
    ctx = _CHECK.get()
    top = ctx is not None and ctx.depth == 0
    for node in graph.nodes:
        inputs = [env[a] for a in node.args]
        named = {k: env[v] for k, v in node.kwargs}
        if ctx is None:
            out = _run_node(module, node, inputs, named)
        else:
            out = _checked(module, node, inputs, named, ctx, top)
        _bind(env, node, out)
    outs = tuple(env[o] for o in graph.outputs)
    return outs[0] if len(outs) == 1 else outs


def _bind(env: dict[str, Any], node: Node, out: Any) -> None:
    if len(node.outs) == 1:
        env[node.outs[0]] = out
        return
    if isinstance(out, Poison):
        for o in node.outs:
            env[o] = out
        return
    if not isinstance(out, tuple | list) or len(out) != len(node.outs):
        n = len(out) if isinstance(out, tuple | list) else 1
        raise _SpecIssue("bad-outputs", f"step '{node.label}' returns {n} value(s) but 'as' names {len(node.outs)}")
    for o, v in zip(node.outs, out, strict=True):
        env[o] = v


def _run_node(module: BuiltModule, node: Node, inputs: list[Any], named: dict[str, Any]) -> Any:
    if node.kind == "op":
        return node.entry.fn(node.config, *inputs, **named)  # type: ignore[union-attr]
    if node.kind == "call":
        return _call_target(module, node)(*inputs, **named)
    sub = getattr(module, node.name)  # type: ignore[arg-type]
    if node.repeat is None:
        return sub(*inputs, **named)
    if named:
        raise _SpecIssue("bad-value", f"repeated step '{node.name}' takes positional inputs only")
    # the first inputs are carried from copy to copy; the rest are the same for every copy
    n_carry = node.carried if node.carried is not None else len(inputs)
    carry, shared = tuple(inputs[:n_carry]), tuple(inputs[n_carry:])
    if not node.scan or node.repeat == 0:
        for layer in sub:
            out = layer(*carry, *shared)
            carry = out if isinstance(out, tuple) else (out,)
        return carry[0] if len(carry) == 1 else carry

    if unrolling():  # for converters that want plain ops (ONNX): see .unroll
        carry = run_unrolled(sub, node.repeat, carry, shared)
        return carry[0] if len(carry) == 1 else carry

    # each stacked copy owns its RNG streams (split at creation), so no split_rngs here
    @nnx.scan(in_axes=(nnx.Carry, 0, None), out_axes=nnx.Carry)
    def body(carry: Any, layer: Any, shared: Any) -> Any:
        out = layer(*carry, *shared)
        return out if isinstance(out, tuple) else (out,)

    carry = body(carry, sub, shared)
    return carry[0] if len(carry) == 1 else carry


def _call_target(module: BuiltModule, node: Node) -> Callable[..., Any]:
    """The module (or its public method) a ``call`` step names; nothing else is reachable.

    Each part of the path must lead to an ``nnx.Module``, and a method must be a plain
    public function of that module's class, not one of ``nnx.Module``'s own.
    """
    from .program import MODULE_API

    cfg = node.config
    target: Any = module
    for part in cfg.module.split("."):  # type: ignore[union-attr]
        target = getattr(target, part, None) if not part.startswith("_") else None
        if not isinstance(target, nnx.Module):
            raise _SpecIssue("bad-call", f"'call' step '{node.label}': '{cfg.module}' is not a module of the model")  # type: ignore[union-attr]
    if not cfg.method:  # type: ignore[union-attr]
        return target
    method = cfg.method  # type: ignore[union-attr]
    fn = getattr(type(target), method, None)
    if method.startswith("_") or method in MODULE_API or hasattr(nnx.Module, method) or not callable(fn) or isinstance(fn, type):
        raise _SpecIssue(
            "bad-call", f"'call' step '{node.label}': '{method}' is not a public method of {type(target).__name__}"
        )
    return getattr(target, method)


def _checked(module: BuiltModule, node: Node, inputs: list[Any], named: dict[str, Any], ctx: CheckContext, top: bool) -> Any:
    all_in = [*inputs, *named.values()]
    if any(isinstance(v, Poison) for v in all_in):
        return Poison()
    src = ", ".join(f"'{a}' {_shape_str(v)}" for a, v in zip((*node.args, *(k for k, _ in node.kwargs)), all_in, strict=False))
    try:
        entry = node.entry if node.kind in ("layer", "op") else None
        if entry is not None and entry.check is not None and node.repeat is None:
            problem = entry.check(node.config, *inputs, **named)
            if problem:
                where = (*node.path, problem.field) if getattr(problem, "field", None) else node.path
                raise SpecError("shape-mismatch", f"step '{node.label}' ({node.type}) {problem} (from {src})", ctx.locate(where), where)
        ctx.depth += 1
        try:
            out = _run_node(module, node, inputs, named)
        finally:
            ctx.depth -= 1
        if top:
            ctx.shapes[node.path] = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), out)
        return out
    except _SpecIssue as e:
        err = SpecError(e.code, str(e), ctx.locate(node.path), node.path)
    except SpecError as e:
        err = e
    except Exception as e:
        text = first_line(e)
        err = SpecError(
            "shape-mismatch",
            f"step '{node.label}' ({node.type}) fails on inputs {src}: {text}",
            ctx.locate(node.path),
            node.path,
        )
    if not top:
        raise err
    ctx.errors.append(err)
    return Poison()
