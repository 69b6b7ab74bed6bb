"""Compiles a validated :class:`Spec` into a :class:`~.program.Program`: resolved, checked scopes.

Everything that can be known without shapes is checked here and every problem is
collected: unknown types and references (with did-you-mean), duplicate names, cycles,
block arguments, expressions, layer fields. Shapes are checked by the abstract build.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import ValidationError

from .. import registry
from ..errors import SpecError, SpecErrors, did_you_mean
from ..expr import ExprError, substitute
from ..schemas.common import Config
from ..schemas.spec import BlockSpec, InputSpec, MethodSpec, Spec, Step, VariableSpec
from ..validation import pydantic_errors
from .blocks import block_arguments
from .kinds import resolve_reported, unknown_kind_message
from .program import (
    MAX_REPEAT,
    MODULE_API,
    RESERVED,
    Graph,
    Node,
    Program,
    Scope,
    class_name,
    modules_problem,
    unnamed_output,
)
from .references import declared_outs, make_graph, ref_paths
from .shapes import checked_input_shape, checked_variable_shape, example_dims

__all__ = ["compile_spec"]


class _Compiler:
    def __init__(self, spec: Spec, locate: Any):
        self.spec = spec
        self.locate = locate
        self.errors: list[SpecError] = []
        self.block_cache: dict[str, Scope] = {}
        self.block_stack: list[str] = []
        self.kind_names: set[str] = set()

    def err(self, code: str, message: str, path: tuple[Any, ...]) -> None:
        self.errors.append(SpecError(code, message, self.locate(path), tuple(path)))

    # ---- kinds --------------------------------------------------------------
    def compile_kinds(self) -> dict[str, type]:
        classes = resolve_reported({n: k.base for n, k in self.spec.kinds.items()}, self.err)
        self.kind_names = set(classes)
        return classes

    def check_kind(self, name: str, path: tuple[Any, ...]) -> bool:
        if name in self.kind_names:
            return True
        self.err("unknown-kind", unknown_kind_message(name, self.kind_names), path)
        return False

    # ---- expressions ----------------------------------------------------------
    def subst(self, value: Any, names: dict[str, Any], path: tuple[Any, ...]) -> Any:
        try:
            return substitute(value, names)
        except ExprError as e:
            self.err("bad-expression", str(e), path)
            return None

    # ---- scopes -------------------------------------------------------------
    def compile_scope(
        self,
        *,
        name: str,
        path: tuple[Any, ...],
        inputs: dict[str, InputSpec] | list[str],
        variables: dict[str, VariableSpec],
        steps: list[Step],
        outputs: list[str] | None,
        methods: dict[str, MethodSpec],
        names: dict[str, Any],
        key_extra: Any,
    ) -> Scope:
        input_names = list(inputs)
        input_specs: list[tuple[str, InputSpec]] = []
        if isinstance(inputs, dict):
            for n, s in inputs.items():
                spath = (*path, "inputs", n, "shape")
                shape = checked_input_shape(n, self.subst(s.shape, names, spath), spath, self.err)
                input_specs.append((n, InputSpec(shape=shape if shape is not None else s.shape, dtype=s.dtype)))

        values: dict[str, tuple[Any, ...]] = {n: (*path, "inputs", n) for n in input_names}
        resolved_vars: list[tuple[str, VariableSpec, tuple[Any, ...]]] = []
        for vname, var in variables.items():
            vpath = (*path, "variables", vname)
            self.check_kind(var.kind, (*vpath, "kind"))
            shape = checked_variable_shape(vname, self.subst(var.shape, names, (*vpath, "shape")), (*vpath, "shape"), self.err)
            if shape is not None:
                var = var.model_copy(update={"shape": shape})
            self.add_value(values, vname, vpath)
            resolved_vars.append((vname, var, vpath))

        attrs: dict[str, Node] = {}
        main_nodes = self.compile_steps(steps, (*path, "layers"), input_names, values, names, attrs, start=0)
        main_outputs = self.check_outputs(outputs, main_nodes, values, (*path, "outputs"), input_names)
        graph_main = make_graph(input_names, main_nodes, main_outputs, input_specs, self.err)
        # the abstract check runs every step, even one no output needs
        every = tuple(o for n in main_nodes for o in n.outs)
        graph_check = make_graph(input_names, main_nodes, every, input_specs, self.err)
        graph_check = Graph(graph_check.inputs, graph_check.nodes, main_outputs, graph_check.input_specs)

        method_graphs: list[tuple[str, Graph]] = []
        count = len(main_nodes)
        for mname, method in methods.items():
            mpath = (*path, "methods", mname)
            if mname in RESERVED or mname in attrs or mname in values:
                self.err("reserved-name", f"method name '{mname}' clashes with an attribute or value of the module", mpath)
                continue
            m_inputs = input_names if method.inputs is None else list(method.inputs)
            m_specs = list(input_specs)
            if isinstance(method.inputs, dict):
                m_specs = [(n, s) for n, s in method.inputs.items()]
            m_values = dict(values)
            for n in m_inputs:
                if n not in values:
                    m_values[n] = (*mpath, "inputs", n)
            m_nodes = self.compile_steps(method.layers, (*mpath, "layers"), m_inputs, m_values, names, attrs, start=count)
            count += len(m_nodes)
            outs = self.check_outputs(method.outputs, m_nodes, m_values, (*mpath, "outputs"), m_inputs)
            method_graphs.append(
                (mname, make_graph(tuple(m_inputs), (*main_nodes, *m_nodes), outs, m_specs, self.err))
            )

        modules = tuple(n for n in attrs.values())
        key_src = json.dumps(
            [name, key_extra, [s.model_dump(by_alias=True) for s in steps], list(inputs), outputs,
             {k: v.model_dump() for k, v in variables.items()}, {k: v.model_dump(by_alias=True) for k, v in methods.items()},
             sorted((k, v.base) for k, v in self.spec.kinds.items()), self.spec.dtype, self.spec.param_dtype],
            sort_keys=True, default=str,
        )
        key = hashlib.sha256(key_src.encode()).hexdigest()
        return Scope(
            key=key,
            name=class_name(name),
            variables=tuple(resolved_vars),
            modules=modules,
            main=graph_main,
            methods=tuple(method_graphs),
            kinds=tuple(sorted((k, v.base) for k, v in self.spec.kinds.items())),
            path=path,
            check_graph=graph_check,
        )

    def add_value(self, values: dict[str, tuple[Any, ...]], name: str, path: tuple[Any, ...]) -> bool:
        if name in values:
            self.err("duplicate-name", f"name '{name}' is already used (line {self.locate(values[name]).line}); choose another name", path)
            return False
        values[name] = path
        return True

    def compile_steps(
        self,
        steps: list[Step],
        path: tuple[Any, ...],
        inputs: list[str],
        values: dict[str, tuple[Any, ...]],
        names: dict[str, Any],
        attrs: dict[str, Node],
        start: int,
    ) -> list[Node]:
        nodes: list[Node] = []
        previous: str | None = inputs[0] if len(inputs) == 1 else None
        pending_refs: list[tuple[str, tuple[Any, ...]]] = []
        for i, step in enumerate(steps):
            spath = (*path, i)
            node = self.compile_step(step, spath, start + i, previous, names, attrs, inputs)
            if node is None:
                # keep later steps checkable: the failed step's outputs still exist by name
                outs = declared_outs(step)
                for out in outs:
                    self.add_value(values, out, spath)
                previous = outs[0] if outs else None
                continue
            for out in node.outs:
                self.add_value(values, out, spath)
            if node.attr is not None:
                if node.attr in RESERVED:
                    self.err("reserved-name", f"step name '{node.attr}' would shadow nnx.Module.{node.attr}; rename the step", spath)
                elif node.attr in attrs:
                    pass  # reported as duplicate-name above
                else:
                    attrs[node.attr] = node
            pending_refs.extend(ref_paths(step, node, spath))
            nodes.append(node)
            previous = node.outs[0] if node.outs else None
        # references may point forward (DAG), so they are checked once all names are known
        for ref, spath in pending_refs:
            if ref not in values:
                self.err(
                    "unknown-ref",
                    f"step input '{ref}' is not an input, variable or step output{did_you_mean(ref, values)}",
                    (*spath,),
                )
        for node in nodes:
            if node.kind == "call":
                parts = [*node.config.module.split("."), *([node.config.method] if node.config.method else [])]  # type: ignore[union-attr]
                private = [p for p in parts if p.startswith("_") or p in MODULE_API]
                if private:
                    self.err(
                        "unsafe-name",
                        f"'call' may name modules and their public methods only; '{private[0]}' is "
                        + ("private" if private[0].startswith("_") else "part of nnx.Module's own API"),
                        node.path,
                    )
                    continue
                target = parts[0]
                if target not in attrs:
                    self.err(
                        "unknown-ref",
                        f"'call' names module '{target}', which no step creates{did_you_mean(target, attrs)}",
                        node.path,
                    )
        return nodes

    def compile_step(
        self,
        step: Step,
        spath: tuple[Any, ...],
        index: int,
        previous: str | None,
        names: dict[str, Any],
        attrs: dict[str, Node],
        inputs: list[str],
    ) -> Node | None:
        fields: dict[str, Any] | None = {}
        for k, v in step.fields.items():  # each field on its own, so an error points at its key
            n_errors = len(self.errors)
            value = self.subst(v, names, (*spath, k))
            if len(self.errors) > n_errors:
                fields = None
            elif fields is not None:
                fields[k] = value
        repeat = self.subst(step.repeat, names, (*spath, "repeat"))
        if fields is None:
            return None
        if repeat is not None and (not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 0 or repeat > MAX_REPEAT):
            self.err("bad-value", f"repeat must be an integer from 0 to {MAX_REPEAT}, received {repeat!r}", (*spath, "repeat"))
            return None
        if step.scan and repeat is None:
            self.err("bad-value", "scan: true needs repeat: N (the number of stacked copies)", (*spath, "scan"))
        for kname, kind in step.kinds.items():
            self.check_kind(kind, (*spath, "kinds", kname))

        args, kwargs = step.inputs()
        if not args and not kwargs:
            if previous is None:
                self.err(
                    "missing-input",
                    f"step {step.name or step.type!r} needs 'in:' naming its inputs "
                    + (f"(the model has several inputs: {', '.join(inputs)})" if inputs else "(the model has no inputs)")
                    if index == 0 or not step.name else
                    f"step {step.name!r} needs 'in:' naming its inputs (the previous step has no output)",
                    spath,
                )
                return None
            args = (previous,)

        entry = registry.get(step.type)
        block: Scope | None = None
        config: Config | None = None
        lora = self.lora_option(step, entry, fields, spath)
        if lora is False:
            return None
        if step.type in self.spec.blocks:
            kind = "block"
            block = self.instantiate_block(step.type, fields, spath)
            if block is None:
                return None
        elif entry is None:
            self.err("unknown-type", registry.unknown_type_message(step.type, list(self.spec.blocks)), (*spath, "type") if step.name else spath)
            return None
        else:
            kind = entry.kind
            data = {"type": step.type, **fields}
            for dt in ("dtype", "param_dtype"):
                default = getattr(self.spec, dt)
                if default is not None and dt in entry.config.model_fields and dt not in data:
                    data[dt] = default
            try:
                config = entry.config.model_validate(data)
            except ValidationError as e:
                self.errors.extend(pydantic_errors(e, spath, self.locate, entry.config, data))
                return None
        if kind in ("layer", "block") and not step.name:
            self.err(
                "missing-name",
                f"layer '{step.type}' needs a name (it becomes a module attribute): "
                f"- my_{step.type.lower()}: {{type: {step.type}, ...}}",
                spath,
            )
            return None
        if kind not in ("layer", "block") and (step.repeat is not None or step.kinds or step.sharding):
            self.err("bad-value", f"'{step.type}' is an op without variables; repeat, kinds and sharding apply to layers and blocks", spath)
        carried = None
        if block is not None and repeat is not None:
            carried = len(block.main.outputs)
            if carried > len(args) and not kwargs:
                self.err(
                    "bad-value",
                    f"repeated block '{step.type}' returns {carried} values but receives {len(args)} input(s): each copy's "
                    "outputs are the next copy's first inputs, so a repeated block returns at most as many values as it takes",
                    (*spath, "repeat"),
                )
                return None
        if step.as_ is None:
            outs: tuple[str, ...] = (step.name,) if step.name else (unnamed_output(step.type, index),)
        else:
            outs = (step.as_,) if isinstance(step.as_, str) else tuple(step.as_)
        return Node(
            index=index,
            name=step.name,
            kind=kind,
            type=step.type,
            config=config,
            block=block,
            args=args,
            kwargs=tuple(kwargs.items()),
            outs=outs,
            path=spath,
            repeat=repeat,
            scan=step.scan,
            kinds=tuple(step.kinds.items()),
            sharding=tuple((k, tuple(v)) for k, v in step.sharding.items()),
            lora=lora,
            entry=entry if kind != "block" else None,
            carried=carried,
        )

    def lora_option(self, step: Step, entry: Any, fields: dict[str, Any], spath: tuple[Any, ...]) -> Any:
        """Takes a ``lora:`` option out of ``fields``: None (absent), a LoRAOption, or False (reported)."""
        from .lora import LoRAOption

        is_block = step.type in self.spec.blocks
        if "lora" not in fields or (is_block and "lora" in self.spec.blocks[step.type].args):
            return None
        if entry is not None and "lora" in entry.config.model_fields:
            return None
        value = fields.pop("lora")
        if not is_block and (entry is None or entry.kind != "layer"):
            if entry is not None:
                self.err("bad-value", f"'{step.type}' is an op without variables; lora applies to Linear layers and blocks", (*spath, "lora"))
                return False
            return None  # unknown type: reported by the caller
        try:
            return LoRAOption.model_validate(value)
        except ValidationError as e:
            self.errors.extend(pydantic_errors(e, (*spath, "lora"), self.locate, LoRAOption, value))
            return False

    def instantiate_block(self, bname: str, fields: dict[str, Any], spath: tuple[Any, ...]) -> Scope | None:
        block: BlockSpec = self.spec.blocks[bname]
        if bname in self.block_stack:
            chain = " -> ".join([*self.block_stack[self.block_stack.index(bname):], bname])
            self.err("cycle", f"block '{bname}' uses itself ({chain})", spath)
            return None
        args = block_arguments(bname, block, fields, spath, self.err)
        if args is None:
            return None
        key = json.dumps([bname, args], sort_keys=True, default=str)
        if key in self.block_cache:
            return self.block_cache[key]
        self.block_stack.append(bname)
        n_errors = len(self.errors)
        try:
            scope = self.compile_scope(
                name=bname,
                path=("blocks", bname),
                inputs=list(block.inputs),
                variables=block.variables,
                steps=block.layers,
                outputs=block.outputs,
                methods=block.methods,
                names={**self.spec.args, **args},
                key_extra=args,
            )
        finally:
            self.block_stack.pop()
        if len(self.errors) > n_errors:
            return None
        self.block_cache[key] = scope
        return scope

    def check_outputs(
        self,
        outputs: list[str] | None,
        nodes: list[Node],
        values: dict[str, tuple[Any, ...]],
        path: tuple[Any, ...],
        inputs: list[str],
    ) -> tuple[str, ...]:
        if outputs is None:
            if not nodes:
                return tuple(inputs[:1])
            return nodes[-1].outs[:1]
        for i, name in enumerate(outputs):
            if name not in values:
                self.err("unknown-ref", f"output '{name}' is not a step output or input{did_you_mean(name, values)}", (*path, i))
        return tuple(outputs)


def compile_spec(spec: Spec, locate: Any = None, limits: Any = None) -> Program:
    """Resolves ``spec`` into a :class:`Program`; raises :class:`SpecErrors` with every problem.

    ``limits`` (a :class:`nnx_build.loader.Limits`) bounds the module instances the spec
    unrolls to (``too-many-modules``), so a nest of ``repeat:`` cannot make the build hang.
    """
    from ..errors import Location
    from ..loader import Limits

    limits = limits or Limits()
    locate = locate or (lambda path: Location())
    c = _Compiler(spec, locate)
    kinds = c.compile_kinds()
    names = dict(spec.args)
    root = c.compile_scope(
        name=spec.name,
        path=(),
        inputs=spec.inputs,
        variables=spec.variables,
        steps=spec.layers,
        outputs=spec.outputs,
        methods=spec.methods,
        names=names,
        key_extra=spec.args,
    )
    dims = example_dims(root.main.input_specs, spec.dims, c.err)
    if not c.errors:
        too_many = modules_problem(root, limits.max_modules)
        if too_many is not None:
            c.err("too-many-modules", f"{too_many[0]} or {Limits.how_to_raise('max_modules')}", too_many[1])
    if c.errors:
        raise SpecErrors(c.errors)
    return Program(spec=spec, root=root, kind_classes=kinds, dims=dims)
