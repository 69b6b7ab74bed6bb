"""Local corrections to ``jax2onnx`` 0.17, active only while nnx-build converts.

Two faults of the converter, each fixed here without editing it:

* **Layout of graph outputs.** Its graph optimiser lifts ``Add`` chains and forests that sit
  between ``Transpose(NHWC->NCHW)`` and the inverse transpose into NCHW
  (``remove_redundant_transpose_pairs_ir``, ``remove_redundant_transpose_add_forests_ir``).
  It checks that every *node* consuming such an ``Add`` is an ``Add`` or the inverse
  transpose, but not whether the value is also a *graph output*: a residual sum that is a
  model output then comes out in NCHW (``conv + conv -> add -> conv -> add``). Here every
  graph output is held by a placeholder node (an op of a private domain, which none of its
  passes moves a layout across) while the optimiser runs; the placeholder then becomes an
  ``Identity``, or vanishes when the value has no other use.
* **Pooling with explicit padding.** ``flax``'s ``pool`` is patched to accept only
  ``'SAME'``/``'VALID'``; explicit pairs reach the ``lax.reduce_window_max`` lowering, which
  pools over every dim (batch and features with a window of 1 included) and emits a 4-D
  ``MaxPool`` on a 6-D tensor that onnxruntime refuses ("Unsupported pooling size"). The
  lowering registered here pools over the dims whose window is not trivial, with the two
  trivial ones (batch, features) transposed to the front; other cases go to the original.
  ``min_pool`` with padding pairs, for which the converter has no lowering at all, becomes
  the same pooling of ``-x``, negated. The converter's own ``flax`` pooling patch refuses
  explicit padding pairs outright, which sent whole models (ResNet's padded stem pool) to
  the traced-jaxpr fallback, without any of the converter's layer plugins (``Relu``,
  ``BatchNormalization``, ...); here it hands such pools to ``flax``'s own code instead.

* **Transpose pairs across residual sums.** With the converter's ``BatchNormalization``
  (``Transpose -> BatchNormalization -> Transpose`` around each NHWC batch norm), its
  ``remove_redundant_transpose_pairs_ir`` pass lifts an ``Add`` chain of a ResNet
  bottleneck into NCHW while one of its operands stays NHWC: onnxruntime refuses the file
  ("Add: Incompatible dimensions", ResNet-50 at 64x64 and 224x224). That pass is left out
  (:data:`SKIPPED_PASSES`); onnxruntime's own transpose optimiser cancels the pairs it
  would have removed when it loads the file.

* **Causal masks over a symbolic length.** ``nnx.make_causal_mask`` broadcasts an
  ``arange`` of the sequence length, which the converter cannot do for a symbolic length
  (GPT-2's ``seq``): the whole model went to the traced-jaxpr fallback. During conversion
  the positions are counted with a cumulative sum of ones instead (the same mask).

And three costs of it:

* **Plugin loading.** On first use the converter imports every plugin module it ships,
  including its Equinox and example trees, which build and compile example models at
  import time (10-20 s). :func:`load_plugins` imports the ``jax`` and ``flax`` trees only,
  once per process, and marks the registry as loaded.
* **Unfused ops.** After the converter's graph optimiser, :func:`onnx_rewrites.rewrite`
  replaces patterns by the ops onnxruntime fuses (``Max(x, 0)`` by ``Relu``).
* **Weight copies.** The converter makes every float initializer it adds float32 with
  ``astype``, which copies even a float32 array: the kernels its plugins reshape (a
  ``MultiHeadAttention``'s query/key/value/out, 108 MB of ViT-B/16's weights) were held
  twice. :func:`_sharing_initializers` gives such an initializer the array it was given.

:func:`conversion_fixes` installs the fixes for the duration of a conversion and restores
the converter as it was afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["GUARD_DOMAIN", "PLUGIN_TREES", "SKIPPED_PASSES", "conversion_fixes", "guard_outputs", "load_plugins", "unguard_outputs"]

#: the converter's plugin trees a flax NNX model needs (not ``equinox``, ``dm_pix``, ``examples``)
PLUGIN_TREES = ("jax", "flax")
#: the converter's graph optimiser passes left out (see the module docstring)
SKIPPED_PASSES = ("remove_redundant_transpose_pairs",)

#: the private domain of the placeholder holding a graph output during optimisation
GUARD_DOMAIN = "nnx_build.guard"
_GUARD_OP = "Keep"
_GUARD_SUFFIX = "__nnx_build_kept"


def guard_outputs(graph: Any) -> list[Any]:
    """Puts a placeholder node between each graph output and its producer; returns the nodes."""
    import onnx_ir as ir

    guards = []
    for i, value in enumerate(list(graph.outputs)):
        node = ir.Node(GUARD_DOMAIN, _GUARD_OP, [value], attributes=[ir.AttrInt64("index", i)], num_outputs=1)
        held = node.outputs[0]
        name = value.name
        value.name = f"{name}{_GUARD_SUFFIX}" if name else None
        held.name = name
        held.type = value.type
        held.shape = value.shape
        graph.append(node)
        graph.outputs[i] = held
        guards.append(node)
    return guards


def unguard_outputs(graph: Any, guards: list[Any]) -> None:
    """Removes the placeholders: the held value becomes the output again, else an ``Identity`` does."""
    import onnx_ir as ir

    for node in guards:
        held = node.outputs[0]
        (value,) = node.inputs
        name = held.name
        index = next((i for i, v in enumerate(graph.outputs) if v is held), None)
        removable = (
            index is not None
            and value is not None
            and value.producer() is not None
            and not value.is_graph_output()
            and len(value.uses()) == 1
        )
        if removable:
            graph.outputs[index] = value
            graph.remove(node, safe=True)
            value.name = name
            continue
        identity = ir.Node("", "Identity", [value], num_outputs=1)
        out = identity.outputs[0]
        out.type, out.shape = held.type, held.shape
        graph.insert_after(node, identity)
        if index is not None:
            graph.outputs[index] = out
        graph.remove(node, safe=True)
        out.name = name


def _guarded(optimize: Any) -> Any:
    from .onnx_rewrites import rewrite

    def optimize_graph(model: Any) -> Any:
        guards = guard_outputs(model.graph)
        try:
            result = optimize(model)
            rewrite(model)
            return result
        finally:
            unguard_outputs(model.graph, guards)

    optimize_graph.__wrapped__ = optimize  # type: ignore[attr-defined]
    return optimize_graph


def _max_pool_plugin(original: Any) -> Any:
    """A ``reduce_window_max`` lowering pooling only the dims whose window is not trivial."""
    from jax2onnx.plugins.plugin_system import PrimitiveLeafPlugin

    class ReduceWindowMaxOverSpatialDims(PrimitiveLeafPlugin):  # type: ignore[misc]
        def lower(self, ctx: Any, eqn: Any) -> None:
            if not _lower_spatial_max_pool(ctx, eqn):
                original.lower(ctx, eqn)

    plugin = ReduceWindowMaxOverSpatialDims()
    plugin.primitive = getattr(original, "primitive", "reduce_window_max")
    plugin.metadata = getattr(original, "metadata", {})
    return plugin


def _min_pool_plugin() -> Any:
    """A ``reduce_window_min`` lowering (the converter has none): ``-max_pool(-x)`` over the spatial dims."""
    from jax2onnx.plugins.plugin_system import PrimitiveLeafPlugin

    class ReduceWindowMinOverSpatialDims(PrimitiveLeafPlugin):  # type: ignore[misc]
        def lower(self, ctx: Any, eqn: Any) -> None:
            if not _lower_spatial_max_pool(ctx, eqn, negate=True):
                raise NotImplementedError("primitive 'reduce_window_min' is converted only with a window of 1 on two dims (batch, features)")

    plugin = ReduceWindowMinOverSpatialDims()
    plugin.primitive = "reduce_window_min"
    plugin.metadata = {}
    return plugin


def _lower_spatial_max_pool(ctx: Any, eqn: Any, *, negate: bool = False) -> bool:
    """``Transpose -> MaxPool -> Transpose`` when exactly two dims have a trivial window; else False.

    With ``negate`` it is a min pool: ``Neg`` before and after (padding is ignored by
    ``MaxPool``, as ``+inf`` padding is by a min).
    """
    import onnx_ir as ir
    from jax2onnx.plugins._ir_shapes import _ensure_value_metadata, _stamp_type_and_shape

    params = eqn.params
    window = tuple(int(d) for d in params["window_dimensions"])
    strides = tuple(int(d) for d in params["window_strides"])
    pads = tuple((int(lo), int(hi)) for lo, hi in params["padding"])
    base = tuple(int(d) for d in params["base_dilation"])
    dilation = tuple(int(d) for d in params["window_dilation"])
    rank = len(window)
    trivial = [i for i in range(rank) if (window[i], strides[i], pads[i], dilation[i]) == (1, 1, (0, 0), 1)]
    pooled = [i for i in range(rank) if i not in trivial]
    if len(trivial) != 2 or not 1 <= len(pooled) <= 3 or any(b != 1 for b in base):
        return False
    x_var, y_var = eqn.invars[0], eqn.outvars[0]
    x_shape, y_shape = tuple(x_var.aval.shape), tuple(y_var.aval.shape)
    perm = [*trivial, *pooled]
    inverse = [perm.index(i) for i in range(rank)]
    x = ctx.get_value_for_var(x_var, name_hint=ctx.fresh_name("max_pool_in"))
    y_spec = ctx.get_value_for_var(y_var, name_hint=ctx.fresh_name("max_pool_out"))
    dtype = x.type.dtype if x.type is not None else None
    builder = ctx.builder

    def stamp(value: Any, dims: tuple[Any, ...]) -> Any:
        if dtype is not None:
            value.type = ir.TensorType(dtype)
        _stamp_type_and_shape(value, dims)
        _ensure_value_metadata(ctx, value)
        return value

    if negate:
        x = stamp(builder.Neg(x, _outputs=[ctx.fresh_name("min_pool_neg")]), x_shape)
    moved = x
    if perm != list(range(rank)):
        moved = stamp(builder.Transpose(x, _outputs=[ctx.fresh_name("max_pool_nc")], perm=tuple(perm)), tuple(x_shape[i] for i in perm))
    kwargs: dict[str, Any] = {
        "kernel_shape": tuple(window[i] for i in pooled),
        "strides": tuple(strides[i] for i in pooled),
        "pads": tuple(pads[i][0] for i in pooled) + tuple(pads[i][1] for i in pooled),
    }
    if any(dilation[i] != 1 for i in pooled):
        kwargs["dilations"] = tuple(dilation[i] for i in pooled)
    name = getattr(y_spec, "name", None) or ctx.fresh_name("max_pool")
    last = ctx.fresh_name("max_pool") if negate else name
    if perm == list(range(rank)):
        result = stamp(builder.MaxPool(moved, _outputs=[last], **kwargs), y_shape)
    else:
        pooled_value = stamp(builder.MaxPool(moved, _outputs=[ctx.fresh_name("max_pool")], **kwargs), tuple(y_shape[i] for i in perm))
        result = stamp(builder.Transpose(pooled_value, _outputs=[last], perm=tuple(inverse)), y_shape)
    if negate:
        result = stamp(builder.Neg(result, _outputs=[name]), y_shape)
    ctx.bind_value_for_var(y_var, result)
    return True


def load_plugins() -> None:
    """Imports the converter's ``jax`` and ``flax`` plugins (once per process) and marks the registry loaded.

    Falls back to the converter's own loading of every plugin when its internals differ.
    """
    from pathlib import Path

    from jax2onnx.plugins import plugin_system

    if getattr(plugin_system, "_already_imported_plugins", True):
        return
    import_tree = getattr(plugin_system, "_import_tree", None)
    if import_tree is None:
        plugin_system.import_all_plugins()
        return
    root = Path(plugin_system.__file__).resolve().parent
    for tree in PLUGIN_TREES:
        import_tree(root / tree, f"jax2onnx.plugins.{tree}")
    plugin_system._already_imported_plugins = True


def _sharing_initializers(original: Any) -> Any:
    """``IRBuilder.add_initializer_from_scalar`` keeping a float32 array it is given instead of its copy."""
    import numpy as np

    def add_initializer_from_scalar(self: Any, name: str, value: Any) -> Any:
        v = original(self, name, value)
        tensor = getattr(v, "const_value", None)
        if (
            isinstance(value, np.ndarray) and value.dtype == np.float32 and tensor is not None
            and not getattr(self, "_function_mode", True) and v.dtype is not None and v.dtype.name == "FLOAT"
        ):
            copy = tensor.numpy()
            if copy.shape == value.shape and not np.shares_memory(copy, value):
                import onnx_ir

                v.const_value = onnx_ir.tensor(value, name=tensor.name)  # the copy is freed here
        return v

    return add_initializer_from_scalar


def _flax_pool_patch(original: Any) -> Any:
    """The converter's ``flax.linen.pooling.pool`` patch, handing explicit padding pairs to flax's own code."""

    def get_monkey_patch(orig_fn: Any) -> Any:
        patched = original(orig_fn)

        def pool(inputs: Any, init: Any, reduce_fn: Any, window_shape: Any, strides: Any, padding: Any) -> Any:
            if isinstance(padding, str):
                return patched(inputs, init, reduce_fn, window_shape, strides, padding)
            return orig_fn(inputs, init, reduce_fn, window_shape, strides, padding)

        return pool

    return staticmethod(get_monkey_patch)


def _flax_pool_plugin() -> Any:
    try:
        from jax2onnx.plugins.flax.linen.pool import PoolPlugin
    except ImportError:
        return None
    return PoolPlugin if callable(getattr(PoolPlugin, "get_monkey_patch", None)) else None


def _causal_mask(x: Any, extra_batch_dims: int = 0, dtype: Any = None) -> Any:
    """``nnx.make_causal_mask`` with the positions counted by ``cumsum``: the converter cannot
    broadcast an ``arange`` of a symbolic length (the sequence dim), a cumulative sum of ones is
    the same ``0, 1, ..., n-1`` along it."""
    import jax.numpy as jnp
    from flax import nnx

    idxs = jnp.cumsum(jnp.ones_like(x, dtype=jnp.int32), axis=-1) - 1
    return nnx.make_attention_mask(idxs, idxs, jnp.greater_equal, extra_batch_dims=extra_batch_dims, dtype=dtype or jnp.float32)


@contextlib.contextmanager
def conversion_fixes() -> Iterator[None]:
    """Installs the corrections for the block; the converter is as it was afterwards.

    Each correction is skipped when the converter's internals it hooks into are absent
    (another release): the verification of the export still compares the result with JAX.
    """
    from jax2onnx.converter import conversion_api
    from jax2onnx.plugins import plugin_system

    load_plugins()
    registry = plugin_system.PLUGIN_REGISTRY
    pool_plugin = _flax_pool_plugin()
    pool_patch = pool_plugin.__dict__.get("get_monkey_patch") if pool_plugin is not None else None
    optimize = getattr(conversion_api, "optimize_graph", None)
    original_pool = registry.get("reduce_window_max")
    has_min_pool = "reduce_window_min" in registry
    if optimize is not None:
        conversion_api.optimize_graph = _guarded(optimize)
    if original_pool is not None:
        registry["reduce_window_max"] = _max_pool_plugin(original_pool)
    if not has_min_pool:
        registry["reduce_window_min"] = _min_pool_plugin()
    if pool_plugin is not None:
        pool_plugin.get_monkey_patch = _flax_pool_patch(pool_plugin.get_monkey_patch)
    from jax2onnx.converter import ir_optimizations

    passes = getattr(ir_optimizations, "_OPTIMIZER_PASSES", None)
    if passes is not None:
        ir_optimizations._OPTIMIZER_PASSES = tuple(p for p in passes if getattr(p, "name", None) not in SKIPPED_PASSES)
    from flax import nnx

    causal = nnx.make_causal_mask
    nnx.make_causal_mask = _causal_mask
    from jax2onnx.converter.ir_builder import IRBuilder

    add_initializer = IRBuilder.__dict__.get("add_initializer_from_scalar")
    if add_initializer is not None:
        IRBuilder.add_initializer_from_scalar = _sharing_initializers(add_initializer)
    try:
        yield
    finally:
        nnx.make_causal_mask = causal
        if add_initializer is not None:
            IRBuilder.add_initializer_from_scalar = add_initializer
        if optimize is not None:
            conversion_api.optimize_graph = optimize
        if original_pool is not None:
            registry["reduce_window_max"] = original_pool
        if not has_min_pool:
            registry.pop("reduce_window_min", None)
        if pool_plugin is not None:
            pool_plugin.get_monkey_patch = pool_patch
        if passes is not None:
            ir_optimizations._OPTIMIZER_PASSES = passes
