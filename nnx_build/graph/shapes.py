"""Output shapes of the steps inside blocks, for the expanded graph.

The abstract check records the shape of each model-level step. Inside an expanded block
the picture shows each step's shape too: each block instance of the abstract module is
run again, abstractly, on the shapes its inputs have in the model (symbolic dims kept),
and its steps' shapes are read the same way the check reads the model's. Nothing is
allocated. Where that fails (a shape that depends on something this cannot see), the
steps are drawn without a shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..builder.program import Graph, Program

__all__ = ["block_step_shapes"]


def _fmt(tree: Any) -> str:
    import jax

    leaves = jax.tree.leaves(tree)
    parts = [f"({', '.join(str(d) for d in leaf.shape)})" for leaf in leaves]
    return parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"


def block_step_shapes(program: Program, abstract: Any, locate: Any) -> dict[str, str]:
    """``"BLOCK/STEP"`` (nested: ``"A/B/STEP"``) -> the step's output shape text."""
    import jax
    import numpy as np
    from flax import nnx

    from ..builder.module import checking

    root = program.root
    names = sorted(program.dims)
    symbolic = dict(zip(names, jax.export.symbolic_shape(", ".join(names)), strict=True)) if names else {}
    inputs = {
        n: jax.ShapeDtypeStruct(tuple(symbolic.get(d, d) if isinstance(d, str) else d for d in s.shape), np.dtype(s.dtype))
        for n, s in root.main.input_specs
    }
    out: dict[str, str] = {}

    def run(module: Any, graph: Graph, given: dict[str, Any], prefix: str) -> None:
        graphdef, state = nnx.split(module)
        args = [given[n] for n in graph.inputs]

        def fwd(state: Any, args: list[Any]) -> Any:
            m = nnx.merge(graphdef, state)
            m.eval()
            return m(*args)

        with checking(locate) as ctx:
            try:
                jax.eval_shape(fwd, state, args)
            except Exception:  # noqa: BLE001  (a picture without these shapes)
                return
        if ctx.errors:
            return
        env = dict(given)
        for vname, _, _ in getattr(module, "nnx_build_scope", root).variables:
            var = getattr(module, vname, None)
            if var is not None:
                value = var.get_value()
                env[vname] = jax.ShapeDtypeStruct(value.shape, value.dtype)
        for node in graph.nodes:
            shape = ctx.shapes.get(node.path)
            if shape is None:
                continue
            if prefix:
                out[prefix + node.label] = _fmt(shape)
            if len(node.outs) == 1:
                env[node.outs[0]] = shape
            elif isinstance(shape, tuple | list):
                env.update(zip(node.outs, shape, strict=False))
        for node in graph.nodes:
            if node.kind != "block" or node.block is None or not node.attr:
                continue
            refs = [*node.args, *(v for _, v in node.kwargs)]
            if any(r not in env for r in refs):
                continue
            block_graph = node.block.check_graph or node.block.main
            mapping = dict(zip(block_graph.inputs, [env[r] for r in node.args], strict=False))
            mapping.update({k: env[v] for k, v in node.kwargs})
            if any(n not in mapping for n in block_graph.inputs):
                continue
            sub = getattr(module, node.attr)
            if node.repeat is not None:
                if node.repeat == 0:
                    continue
                if not node.scan:
                    sub = sub[0]
                else:  # one copy of the stacked layers: the leading axis sliced off
                    gdef, st = nnx.split(sub)
                    st = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), st)
                    sub = nnx.merge(gdef, st)
            run(sub, block_graph, mapping, f"{prefix}{node.label}/")

    try:
        run(abstract, root.check_graph or root.main, inputs, "")
    except Exception:  # noqa: BLE001  (a picture without these shapes)
        return out
    return out
