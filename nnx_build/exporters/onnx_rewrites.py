"""Graph rewrites after conversion: the ops onnxruntime fuses, where the converter left arithmetic.

Each rewrite replaces a pattern only where the new op computes the same values for every
input (same dtype, same output shape, constants checked element by element):

* ``Max(x, 0)`` (either order, a floating-point zero constant of ``x``'s dtype with one
  element and no more dims than ``x``) becomes ``Relu(x)``. ``jax.nn.relu`` is
  ``max(x, 0)``; the converter writes ``Relu`` only when the function is reached through
  ``jax.nn.relu`` at trace time, not from a traced jaxpr. onnxruntime fuses ``Relu``
  into the ``Conv`` or ``Gemm`` before it, and runs it as a single pass otherwise. A
  ``Max`` with any non-zero constant (a clip at 6, a floor at 1e-6) is left alone. NaN
  propagates through both; the one difference is the sign of a zero result for ``x = -0.0``
  (``Relu`` keeps ``-0.0``, ``max`` gives ``+0.0``), values that compare equal, as the
  converter's own ``Relu`` for ``jax.nn.relu`` does.

:func:`rewrite` runs on the converter's ``onnx_ir`` model (after its own optimiser, see
``onnx_fixes``); the export's verification then compares the file with JAX as always.
"""

from __future__ import annotations

from typing import Any

__all__ = ["relu_constant", "rewrite"]


def _const(value: Any) -> Any | None:
    """The numpy array of a constant value (an initializer or a ``Constant`` node), or None."""
    if value is None:
        return None
    tensor = value.const_value
    if tensor is None:
        producer = value.producer()
        if producer is None or producer.op_type != "Constant" or producer.domain not in ("", "ai.onnx"):
            return None
        attr = producer.attributes.get("value")
        tensor = None if attr is None else attr.value
    if tensor is None:
        return None
    try:
        return tensor.numpy()
    except Exception:  # noqa: BLE001  (an external or unreadable tensor: not a constant to us)
        return None


def relu_constant(c: Any, x_dtype: Any, x_rank: int | None) -> bool:
    """Whether ``Max(x, c)`` is ``Relu(x)``: ``c`` a one-element float zero of ``x``'s dtype that adds no dims."""
    import numpy as np

    if c is None or c.size != 1 or not np.issubdtype(c.dtype, np.floating):
        return False
    if x_dtype is not None and np.dtype(x_dtype) != c.dtype:
        return False
    if c.ndim > (0 if x_rank is None else x_rank):
        return False
    return bool(np.all(c == 0))


def _np_dtype(value: Any) -> Any:
    try:
        return value.dtype.numpy()
    except Exception:  # noqa: BLE001  (unknown or non-numpy dtype, e.g. bfloat16 in some releases)
        return None


def _rank(value: Any) -> int | None:
    shape = value.shape
    return None if shape is None else len(shape)


def _relu(graph: Any, node: Any) -> bool:
    import onnx_ir as ir

    if node.op_type != "Max" or node.domain not in ("", "ai.onnx") or len(node.inputs) != 2:
        return False
    a, b = node.inputs
    for x, c in ((a, b), (b, a)):
        if x is None or _const(x) is not None:
            continue
        dtype = _np_dtype(x)
        if dtype is None:
            continue
        if not relu_constant(_const(c), dtype, _rank(x)):
            continue
        (out,) = node.outputs
        relu = ir.Node("", "Relu", [x], num_outputs=1)
        new = relu.outputs[0]
        new.type, new.shape = out.type, out.shape
        graph.insert_after(node, relu)
        _take_place(graph, out, new)
        graph.remove(node, safe=True)
        return True
    return False


def _take_place(graph: Any, old: Any, new: Any) -> None:
    """``new`` replaces ``old`` everywhere, as graph output too, and takes its name."""
    name = old.name
    for i, v in enumerate(graph.outputs):
        if v is old:
            graph.outputs[i] = new
    old.replace_all_uses_with(new)
    old.name = None
    new.name = name


def rewrite(model: Any) -> dict[str, int]:
    """Rewrites ``model``'s main graph in place; returns how many of each rewrite it made."""
    graph = model.graph
    counts = {"Relu": 0}
    for node in list(graph):
        if _relu(graph, node):
            counts["Relu"] += 1
    return counts
