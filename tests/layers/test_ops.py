"""Every registered op against an independent jnp / numpy reference.

One table row per op (some ops have several): the step's fields, its inputs and a
reference function. Each row builds a one-step spec, runs it eagerly on a batch of 2 and
compares with the reference, and checks the abstract build with a symbolic ``batch``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

import nnx_build
from nnx_build import registry

RNG = np.random.default_rng(0)
B = 2  # the concrete batch size of every row


def f(*shape: int) -> np.ndarray:
    """Standard normal float32 values, batch first."""
    return RNG.standard_normal((B, *shape)).astype(np.float32)


def pos(*shape: int) -> np.ndarray:
    """Positive float32 values in [0.5, 2), batch first."""
    return RNG.uniform(0.5, 2.0, (B, *shape)).astype(np.float32)


def ints(high: int, *shape: int, low: int = 0) -> np.ndarray:
    return RNG.integers(low, high, (B, *shape)).astype(np.int32)


def bools(*shape: int) -> np.ndarray:
    return RNG.random((B, *shape)) < 0.5


@dataclass
class Fixed:
    """An input without a batch dim (its spec shape is fully concrete)."""

    value: np.ndarray


@dataclass
class Row:
    """One op call: ``step`` fields, named inputs (in ``in:`` order) and a reference.

    ``named``: pass the inputs as a mapping ``in: {name: name}``.
    ``sym``: the expected symbolic output shape(s) of the abstract check; by default the
    reference's shape with its first dim replaced by ``batch``.
    """

    step: dict[str, Any]
    inputs: dict[str, np.ndarray | Fixed]
    ref: Callable[..., Any]
    named: bool = False
    sym: Any = None
    rtol: float = 1e-5
    atol: float = 1e-6
    id: str = ""
    outs: list[str] = field(default_factory=list)


def _dtype(a: np.ndarray) -> str:
    return "bool" if a.dtype == np.bool_ else str(a.dtype)


def spec_text(row: Row) -> str:
    inputs = {}
    for name, v in row.inputs.items():
        arr = v.value if isinstance(v, Fixed) else v
        shape = list(arr.shape) if isinstance(v, Fixed) else ["batch", *arr.shape[1:]]
        inputs[name] = {"shape": shape, "dtype": _dtype(arr)}
    step = dict(row.step)
    names = list(row.inputs)
    if row.named:
        step["in"] = {n: n for n in names}
    elif len(names) > 1:
        step["in"] = names
    doc: dict[str, Any] = {"format": 1, "name": "t", "inputs": inputs, "layers": [step]}
    if "as" in step:
        doc["outputs"] = list(step["as"])
    return yaml.safe_dump(doc, sort_keys=False)


def _arrays(row: Row) -> dict[str, np.ndarray]:
    return {n: (v.value if isinstance(v, Fixed) else v) for n, v in row.inputs.items()}


def np_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    logits = np.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1])
    if mask is not None:
        logits = np.where(mask, logits, np.finfo(np.float32).min)
    return np.einsum("bhqk,bkhd->bqhd", np_softmax(logits), v)


def np_pool(x: np.ndarray, window: tuple[int, ...], reduce: Callable[..., Any]) -> np.ndarray:
    """VALID pooling with stride 1 over the spatial dims of ``(batch, *spatial, c)``."""
    spatial = x.shape[1:-1]
    out_shape = [n - w + 1 for n, w in zip(spatial, window, strict=True)]
    out = np.empty((x.shape[0], *out_shape, x.shape[-1]), x.dtype)
    for idx in np.ndindex(*out_shape):
        sl = tuple(slice(i, i + w) for i, w in zip(idx, window, strict=True))
        patch = x[(slice(None), *sl, slice(None))]
        out[(slice(None), *idx, slice(None))] = reduce(patch, axis=tuple(range(1, 1 + len(window))))
    return out


def _window_sum(x: np.ndarray, window: tuple[int, ...], padding: str) -> np.ndarray:
    dims = (1, *window, 1)
    return np.asarray(jax.lax.reduce_window(jnp.asarray(x), 0.0, jax.lax.add, dims, (1,) * len(dims), padding))


x234 = f(3, 4)
causal_in = f(4, 3)
q, k, v = f(3, 2, 4), f(5, 2, 4), f(5, 2, 4)
attn_mask = bools(1, 3, 5)
attn_mask[..., 0] = True  # every query sees at least one key
qids, kids = ints(5, 4), ints(5, 6)
qids[:, 0] = kids[:, 0] = 1

ROWS: list[Row] = [
    # ---- arithmetic
    Row({"type": "add"}, {"a": f(3), "b": f(3)}, lambda a, b: a + b),
    Row({"type": "add"}, {"a": f(3), "b": f(3), "c": f(1)}, lambda a, b, c: a + b + c, id="three"),
    Row({"type": "mul"}, {"a": f(3), "b": f(3)}, lambda a, b: a * b),
    Row({"type": "sub"}, {"a": f(3), "b": f(3)}, lambda a, b: a - b),
    Row({"type": "div"}, {"a": f(3), "b": pos(3)}, lambda a, b: a / b),
    Row({"type": "maximum"}, {"a": f(3), "b": f(3), "c": f(3)}, lambda a, b, c: np.maximum(np.maximum(a, b), c)),
    Row({"type": "minimum"}, {"a": f(3), "b": f(3)}, np.minimum),
    Row({"type": "scale", "value": 0.125}, {"x": f(3)}, lambda x: x * 0.125),
    Row({"type": "power", "exponent": 3}, {"x": f(3)}, lambda x: x**3),
    Row({"type": "power", "exponent": 0.5}, {"x": pos(3)}, np.sqrt, id="sqrt"),
    Row({"type": "clip", "min": -0.5, "max": 0.5}, {"x": f(4)}, lambda x: np.minimum(np.maximum(x, -0.5), 0.5)),
    Row({"type": "clip", "max": 0.0}, {"x": f(4)}, lambda x: np.minimum(x, 0.0), id="max-only"),
    Row({"type": "abs"}, {"x": f(4)}, np.abs),
    Row({"type": "exp"}, {"x": f(4)}, np.exp),
    Row({"type": "log"}, {"x": pos(4)}, np.log),
    Row({"type": "sqrt"}, {"x": pos(4)}, np.sqrt),
    Row({"type": "rsqrt"}, {"x": pos(4)}, lambda x: 1 / np.sqrt(x)),
    Row({"type": "square"}, {"x": f(4)}, lambda x: x * x),
    Row({"type": "negative"}, {"x": f(4)}, lambda x: -x),
    Row({"type": "reciprocal"}, {"x": pos(4)}, lambda x: 1 / x),
    Row({"type": "sin"}, {"x": f(4)}, np.sin),
    Row({"type": "cos"}, {"x": f(4)}, np.cos),
    Row({"type": "sign"}, {"x": f(4)}, np.sign),
    Row({"type": "floor"}, {"x": 3 * f(4)}, np.floor),
    Row({"type": "ceil"}, {"x": 3 * f(4)}, np.ceil),
    Row({"type": "stop_gradient"}, {"x": f(4)}, lambda x: x),
    Row({"type": "cast", "dtype": "int32"}, {"x": 10 * f(4)}, lambda x: x.astype(np.int32)),
    Row({"type": "cast", "dtype": "float32"}, {"x": ints(9, 4)}, lambda x: x.astype(np.float32), id="to-float"),
    Row({"type": "where"}, {"m": bools(4), "a": f(4), "b": f(4)}, np.where),
    Row({"type": "where", "fill_value": -1e9}, {"m": bools(4), "a": f(4)}, lambda m, a: np.where(m, a, -1e9), id="fill"),
    # ---- reductions
    Row({"type": "mean", "axis": 1}, {"x": x234}, lambda x: x.mean(axis=1)),
    Row({"type": "sum", "axis": 1}, {"x": x234}, lambda x: x.sum(axis=1)),
    Row({"type": "sum"}, {"x": x234}, lambda x: x.sum(), sym=(), id="all-axes"),
    Row({"type": "max", "axis": [1, 2], "keepdims": True}, {"x": x234}, lambda x: x.max(axis=(1, 2), keepdims=True)),
    Row({"type": "min", "axis": -1}, {"x": x234}, lambda x: x.min(axis=-1)),
    Row({"type": "prod", "axis": 1}, {"x": pos(3)}, lambda x: x.prod(axis=1)),
    Row({"type": "var", "axis": -1}, {"x": x234}, lambda x: x.var(axis=-1)),
    Row({"type": "std", "axis": -1, "keepdims": True}, {"x": x234}, lambda x: x.std(axis=-1, keepdims=True)),
    Row({"type": "any", "axis": -1}, {"x": bools(3, 4)}, lambda x: x.any(axis=-1)),
    Row({"type": "all", "axis": 1}, {"x": bools(2, 4)}, lambda x: x.all(axis=1)),
    Row({"type": "argmax"}, {"x": x234}, lambda x: x.argmax(axis=-1)),
    Row({"type": "argmin", "axis": 1, "keepdims": True}, {"x": x234}, lambda x: x.argmin(axis=1)[:, None]),
    Row({"type": "l2_normalize"}, {"x": x234}, lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)),
    Row({"type": "l2_normalize", "axis": [1, 2]}, {"x": x234}, lambda x: x / np.sqrt((x**2).sum(axis=(1, 2), keepdims=True)),
        id="two-axes"),
    Row({"type": "cumsum", "axis": 1}, {"x": x234}, lambda x: np.cumsum(x, axis=1)),
    Row({"type": "cumsum", "reverse": True}, {"x": x234}, lambda x: np.cumsum(x[..., ::-1], axis=-1)[..., ::-1], id="reverse"),
    # ---- shapes
    Row({"type": "reshape", "shape": [2, 6]}, {"x": x234}, lambda x: x.reshape(B, 2, 6)),
    Row({"type": "reshape", "shape": [-1]}, {"x": x234}, lambda x: x.reshape(B, 12), id="minus-one"),
    Row({"type": "flatten"}, {"x": x234}, lambda x: x.reshape(B, -1)),
    Row({"type": "concat", "axis": -1}, {"a": f(3, 2), "b": f(3, 4)}, lambda a, b: np.concatenate([a, b], axis=-1)),
    Row({"type": "stack"}, {"a": f(3), "b": f(3)}, lambda a, b: np.stack([a, b], axis=1)),
    Row({"type": "stack", "axis": -1}, {"a": f(3), "b": f(3), "c": f(3)}, lambda *xs: np.stack(xs, axis=-1), id="last"),
    Row({"type": "transpose", "axes": [0, 2, 1]}, {"x": x234}, lambda x: x.transpose(0, 2, 1)),
    Row({"type": "transpose"}, {"x": x234}, lambda x: x.T, sym=(4, 3, "batch"), id="reverse"),
    Row({"type": "swapaxes", "axis1": 1, "axis2": -1}, {"x": x234}, lambda x: np.swapaxes(x, 1, 2)),
    Row({"type": "squeeze", "axis": 1}, {"x": f(1, 4)}, lambda x: x[:, 0]),
    Row({"type": "expand_dims", "axis": 1}, {"x": f(4)}, lambda x: x[:, None]),
    Row({"type": "expand_dims", "axis": [1, -1]}, {"x": f(4)}, lambda x: x[:, None, :, None], id="two"),
    Row({"type": "broadcast_to", "shape": [3, 4]}, {"x": f(1, 4)}, lambda x: np.broadcast_to(x, (B, 3, 4))),
    Row({"type": "broadcast_to", "shape": [3, 4]}, {"x": f(4)}, lambda x: np.broadcast_to(x[:, None], (B, 3, 4)), id="rank-up"),
    Row({"type": "split", "sections": 2, "as": ["p", "q"]}, {"x": x234}, lambda x: tuple(np.split(x, 2, axis=-1))),
    Row({"type": "split", "sections": [1, 2], "axis": 1, "as": ["p", "q", "r"]}, {"x": x234},
        lambda x: tuple(np.split(x, [1, 2], axis=1)), id="points"),
    Row({"type": "slice", "axis": 1, "start": 0, "stop": 1}, {"x": x234}, lambda x: x[:, 0:1]),
    Row({"type": "slice", "axis": [1, 2], "start": [1, None], "stop": [None, 3], "step": [1, 2]}, {"x": x234},
        lambda x: x[:, 1:, :3:2], id="two-axes"),
    Row({"type": "slice", "axis": -1, "step": -1}, {"x": x234}, lambda x: x[..., ::-1], id="reverse"),
    Row({"type": "index", "axis": 1, "index": 0}, {"x": x234}, lambda x: x[:, 0]),
    Row({"type": "index", "axis": -1, "index": -1}, {"x": x234}, lambda x: x[..., -1], id="last"),
    Row({"type": "take"}, {"table": Fixed(RNG.standard_normal((7, 4)).astype(np.float32)), "ids": ints(7, 3)},
        lambda t, i: t[i]),
    Row({"type": "take", "axis": 1, "mode": "clip"}, {"x": x234, "ids": Fixed(np.array([2, 0, 9], np.int32))},
        lambda x, i: x[:, np.minimum(i, 2)], id="clip"),
    Row({"type": "take_along_axis", "axis": -1}, {"x": f(5), "ids": ints(5, 3)}, lambda x, i: np.take_along_axis(x, i, axis=-1)),
    Row({"type": "positions"}, {"ids": ints(9, 5)}, lambda i: np.broadcast_to(np.arange(5, dtype=np.int32), (B, 5))),
    Row({"type": "positions", "axis": 1, "start": 1}, {"x": x234},
        lambda x: np.broadcast_to(np.arange(1, 4, dtype=np.int32)[:, None], x.shape), id="start"),
    Row({"type": "pad", "pad_width": 1}, {"x": x234}, lambda x: np.pad(x, [(0, 0), (1, 1), (1, 1)])),
    Row({"type": "pad", "pad_width": [[1, 0], [0, 2]], "constant_values": -1.0}, {"x": x234},
        lambda x: np.pad(x, [(0, 0), (1, 0), (0, 2)], constant_values=-1.0), id="pairs"),
    Row({"type": "pad", "pad_width": [1, 2], "mode": "reflect"}, {"x": x234},
        lambda x: np.pad(x, [(0, 0), (1, 2), (1, 2)], mode="reflect"), id="reflect"),
    Row({"type": "repeat", "repeats": 2, "axis": 1}, {"x": x234}, lambda x: np.repeat(x, 2, axis=1)),
    Row({"type": "tile", "reps": [2, 1]}, {"x": x234}, lambda x: np.tile(x, (1, 2, 1))),
    Row({"type": "flip", "axis": 1}, {"x": x234}, lambda x: x[:, ::-1]),
    Row({"type": "roll", "shift": 1, "axis": 1}, {"x": x234}, lambda x: np.roll(x, 1, axis=1)),
    Row({"type": "roll", "shift": [1, -1], "axis": [1, 2]}, {"x": x234}, lambda x: np.roll(x, (1, -1), axis=(1, 2)), id="two"),
    # ---- contractions and attention
    Row({"type": "matmul"}, {"a": f(3, 4), "b": f(4, 5)}, np.matmul),
    Row({"type": "einsum", "equation": "bij,bjk->bik"}, {"a": f(3, 4), "b": f(4, 5)}, lambda a, b: np.einsum("bij,bjk->bik", a, b),
        rtol=1e-4),
    Row({"type": "einsum", "equation": "...d,...d->..."}, {"a": x234, "b": f(3, 4)}, lambda a, b: (a * b).sum(-1), id="ellipsis",
        rtol=1e-4),
    Row({"type": "dot_product_attention"}, {"query": q, "key": k, "value": v}, np_attention, named=True, rtol=1e-4),
    Row({"type": "dot_product_attention"}, {"query": q, "key": k, "value": v, "mask": attn_mask}, np_attention, named=True,
        rtol=1e-4, id="mask"),
    Row({"type": "dot_product_attention", "is_causal": True}, {"query": k, "key": k, "value": v},
        lambda q, k, v: np_attention(q, k, v, np.tril(np.ones((5, 5), bool))), named=True, rtol=1e-4, id="causal"),
    # ---- masks
    Row({"type": "causal_mask"}, {"x": causal_in}, lambda x: np.broadcast_to(np.tril(np.ones((4, 4), bool)), (B, 1, 4, 4))),
    Row({"type": "attention_mask", "pad_id": 0}, {"q": qids, "k": kids},
        lambda a, b: (a != 0)[:, None, :, None] & (b != 0)[:, None, None, :]),
    Row({"type": "attention_mask", "dtype": "float32"}, {"m": (bools(4)).astype(np.float32)},
        lambda m: (m[:, None, :, None] * m[:, None, None, :]).astype(np.float32), id="self"),
    Row({"type": "combine_masks"}, {"a": bools(1, 4, 4), "b": bools(1, 1, 4)}, lambda a, b: a & b),
    Row({"type": "key_padding_mask"}, {"m": ints(2, 6)}, lambda m: (m != 0)[:, None, None, :]),
    Row({"type": "key_padding_mask", "pad_id": 0, "dtype": "float32"}, {"ids": kids},
        lambda ids: (ids != 0)[:, None, None, :].astype(np.float32), id="pad_id"),
    # ---- pooling
    Row({"type": "max_pool", "window_shape": [2, 2], "strides": [2, 2]}, {"x": f(4, 4, 3)},
        lambda x: x.reshape(B, 2, 2, 2, 2, 3).max(axis=(2, 4))),
    Row({"type": "max_pool", "window_shape": [2, 3]}, {"x": f(4, 4, 3)}, lambda x: np_pool(x, (2, 3), np.max), id="stride-1"),
    Row({"type": "min_pool", "window_shape": [3]}, {"x": f(5, 2)}, lambda x: np_pool(x, (3,), np.min)),
    Row({"type": "avg_pool", "window_shape": [2, 2]}, {"x": f(3, 4, 2)}, lambda x: np_pool(x, (2, 2), np.mean)),
    Row({"type": "avg_pool", "window_shape": [2, 2], "padding": "SAME"}, {"x": f(3, 3, 2)},
        lambda x: _window_sum(x, (2, 2), "SAME") / 4, id="same"),
    Row({"type": "avg_pool", "window_shape": [2, 2], "padding": "SAME", "count_include_pad": False}, {"x": f(3, 3, 2)},
        lambda x: _window_sum(x, (2, 2), "SAME") / _window_sum(np.ones_like(x), (2, 2), "SAME"), id="exclude-pad"),
    Row({"type": "avg_pool", "window_shape": [3], "padding": [[1, 1]]}, {"x": f(4, 2)},
        lambda x: np_pool(np.pad(x, [(0, 0), (1, 1), (0, 0)]), (3,), np.mean), id="pairs"),
    Row({"type": "global_avg_pool"}, {"x": f(3, 4, 2)}, lambda x: x.mean(axis=(1, 2))),
    Row({"type": "global_max_pool", "keepdims": True}, {"x": f(3, 4, 2)}, lambda x: x.max(axis=(1, 2), keepdims=True)),
    Row({"type": "global_max_pool"}, {"x": f(5, 2)}, lambda x: x.max(axis=1), id="1d"),
]

# activations: jax.nn is the reference (nnx re-exports it; the op must pass fields through)
_ACT: dict[str, tuple[dict[str, Any], Callable[..., Any]]] = {
    "celu": ({"alpha": 0.5}, lambda x: jax.nn.celu(x, alpha=0.5)),
    "elu": ({"alpha": 0.5}, lambda x: np.where(x > 0, x, 0.5 * np.expm1(x))),
    "gelu": ({"approximate": False}, lambda x: jax.nn.gelu(x, approximate=False)),
    "glu": ({}, lambda x: x[..., :2] * (1 / (1 + np.exp(-x[..., 2:])))),
    "hard_sigmoid": ({}, lambda x: np.clip(x + 3, 0, 6) / 6),
    "hard_silu": ({}, lambda x: x * np.clip(x + 3, 0, 6) / 6),
    "hard_swish": ({}, lambda x: x * np.clip(x + 3, 0, 6) / 6),
    "hard_tanh": ({}, lambda x: np.clip(x, -1, 1)),
    "identity": ({}, lambda x: x),
    "leaky_relu": ({"negative_slope": 0.2}, lambda x: np.where(x >= 0, x, 0.2 * x)),
    "log_sigmoid": ({}, lambda x: -np.logaddexp(0, -x)),
    "log_softmax": ({}, lambda x: np.log(np_softmax(x))),
    "logsumexp": ({"axis": -1}, lambda x: np.log(np.exp(x).sum(-1))),
    "relu": ({}, lambda x: np.maximum(x, 0)),
    "relu6": ({}, lambda x: np.clip(x, 0, 6)),
    "selu": ({}, lambda x: jax.nn.selu(x)),
    "sigmoid": ({}, lambda x: 1 / (1 + np.exp(-x))),
    "silu": ({}, lambda x: x / (1 + np.exp(-x))),
    "swish": ({}, lambda x: x / (1 + np.exp(-x))),
    "soft_sign": ({}, lambda x: x / (1 + np.abs(x))),
    "softmax": ({"axis": -1}, np_softmax),
    "softplus": ({}, lambda x: np.logaddexp(0, x)),
    "standardize": ({"axis": -1}, lambda x: (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)),
    "tanh": ({}, np.tanh),
}
ROWS += [Row({"type": name, **fields}, {"x": 3 * f(3, 4)}, ref, rtol=1e-5, atol=1e-5) for name, (fields, ref) in _ACT.items()]
ROWS.append(
    Row({"type": "one_hot", "num_classes": 5}, {"ids": ints(5, 3)}, lambda i: np.eye(5, dtype=np.float32)[i])
)


def _row_id(row: Row) -> str:
    return row.step["type"] + (f"-{row.id}" if row.id else "")


def test_every_op_has_a_row() -> None:
    ops = {e.name for e in registry.entries() if e.kind == "op"}
    covered = {r.step["type"] for r in ROWS}
    missing = sorted(ops - covered)
    assert not missing, f"registered ops without a row in tests/layers/test_ops.py: {', '.join(missing)}"


def test_rows_have_distinct_ids() -> None:
    ids = [_row_id(r) for r in ROWS]
    assert len(ids) == len(set(ids))


def _as_tuple(x: Any) -> tuple[Any, ...]:
    return tuple(x) if isinstance(x, tuple | list) else (x,)


@pytest.mark.parametrize("row", ROWS, ids=_row_id)
def test_op_matches_reference(row: Row) -> None:
    text = spec_text(row)
    arrays = _arrays(row)
    expected = _as_tuple(row.ref(*arrays.values()))

    report = nnx_build.check(text)
    model = nnx_build.build(text, check=False)
    got = _as_tuple(model(**arrays))

    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        e = np.asarray(e)
        assert g.shape == e.shape
        if e.dtype == np.bool_ or np.issubdtype(e.dtype, np.integer):
            assert g.dtype.kind == e.dtype.kind
            np.testing.assert_array_equal(np.asarray(g), e)
        else:
            np.testing.assert_allclose(np.asarray(g), e, rtol=row.rtol, atol=row.atol)

    # the abstract check runs with a symbolic batch dim
    shapes = [tuple(o["shape"]) for o in report.outputs.values()]
    if row.sym is not None:
        want = [tuple(row.sym)]
    else:
        want = [("batch", *np.shape(e)[1:]) for e in expected]
    assert shapes == want
    assert [o["dtype"] for o in report.outputs.values()] == [str(np.asarray(g).dtype) for g in got]


# ---- errors: located at the step, with a stable code ------------------------------------------

HEAD = "format: 1\nname: t\ninputs: {x: {shape: [batch, 3, 4], dtype: float32}, y: {shape: [batch, 5, 4], dtype: float32}}\nlayers:\n"


def _errors(step: str, *, head: str = HEAD) -> list[nnx_build.SpecError]:
    text = head + "  - {type: relu, in: x}\n" + step + "\n"
    with pytest.raises(nnx_build.SpecErrors) as info:
        nnx_build.build(text)
    return info.value.errors


STEP_LINE = HEAD.count("\n") + 2  # the step after `- relu`


@pytest.mark.parametrize(
    ("step", "code", "words"),
    [
        ("  - {type: reshape, shape: [5, 5]}", "shape-mismatch", "cannot reshape"),
        ("  - {type: concat, in: [x, y], axis: -1}", "shape-mismatch", "concat"),
        ("  - {type: split, sections: 3}", "shape-mismatch", "3 equal parts"),
        ("  - {type: squeeze, axis: 1}", "shape-mismatch", "size 1"),
        ("  - {type: transpose, axes: [0, 1]}", "shape-mismatch", "permutation"),
        ("  - {type: swapaxes, axis1: 1, axis2: 3}", "shape-mismatch", "outside"),
        ("  - {type: index, axis: 1, index: 3}", "shape-mismatch", "index 3"),
        ("  - {type: sum, axis: 5}", "shape-mismatch", "axis 5"),
        ("  - {type: mean, axis: [1, -4]}", "shape-mismatch", "axis -4"),
        ("  - {type: einsum, equation: 'bij,bjk->bik'}", "shape-mismatch", "operand"),
        ("  - {type: einsum, equation: 'ij->ji'}", "shape-mismatch", "names 2 dim"),
        ("  - {type: pad, pad_width: [[1, 1]]}", "shape-mismatch", "pair per dim"),
        ("  - {type: max_pool, window_shape: [4]}", "shape-mismatch", "larger than"),
        ("  - {type: max_pool, window_shape: [2, 2]}", "shape-mismatch", "window_shape"),
        ("  - {type: avg_pool, window_shape: [2], strides: [1, 1]}", "shape-mismatch", "strides"),
        ("  - {type: global_avg_pool, in: z}", "shape-mismatch", "spatial"),
        ("  - {type: add, in: [x, y]}", "shape-mismatch", "add"),
        ("  - {type: where, in: [x, y]}", "shape-mismatch", "3 inputs"),
        ("  - {type: take, in: [x, x]}", "shape-mismatch", "integer indices"),
        ("  - {type: causal_mask, axis: 3}", "shape-mismatch", "axis 3"),
        ("  - {type: combine_masks, in: [x, z]}", "shape-mismatch", "equal rank"),
        ("  - {type: dot_product_attention, in: {query: x, key: x}}", "shape-mismatch", "missing value"),
    ],
)
def test_bad_op_is_located(step: str, code: str, words: str) -> None:
    head = HEAD.replace("dtype: float32}}", "dtype: float32}, z: {shape: [batch, 4], dtype: float32}}")
    errors = _errors(step, head=head)
    assert errors[0].code == code
    assert errors[0].loc.line == STEP_LINE
    assert words in errors[0].message


@pytest.mark.parametrize(
    "step",
    [
        "  - {type: slice, axis: [1, 2], start: 0}",
        "  - {type: slice, axis: 1, start: [0, 1]}",
        "  - {type: slice, axis: 1, step: 0}",
        "  - {type: pad, pad_width: [1, 2, 3]}",
        "  - {type: pad, pad_width: -1}",
        "  - {type: max_pool, window_shape: [2], padding: FULL}",
        "  - {type: squeeze}",
        "  - {type: repeat, repeats: 0, axis: 1}",
    ],
)
def test_bad_field_is_located(step: str) -> None:
    errors = _errors(step)
    assert errors[0].loc.line >= STEP_LINE
    assert errors[0].code != "shape-mismatch"


# ---- symbolic dims beyond the batch ------------------------------------------------------------


def test_transformer_pieces_with_symbolic_sequence() -> None:
    text = """format: 1
name: t
dims: {seq: 6}
inputs: {x: {shape: [batch, seq, 8], dtype: float32}, ids: {shape: [batch, seq], dtype: int32}}
layers:
  - {type: positions, in: ids, as: pos}
  - {type: causal_mask, in: x, as: causal}
  - {type: attention_mask, in: ids, pad_id: 0, as: padding}
  - {type: combine_masks, in: [causal, padding], as: mask}
  - {type: reshape, in: x, shape: [-1, 2, 4], as: h}
  - {type: split, in: h, sections: 2, axis: -1, as: [qk, v]}
  - {type: dot_product_attention, in: {query: qk, key: qk, value: v, mask: mask}, as: o}
  - {type: flatten, in: o, batch_dims: 2, as: flat}
  - {type: slice, in: x, axis: 1, start: 0, stop: 1, as: cls}
  - {type: index, in: x, axis: 1, index: -1, as: last}
  - {type: pad, in: x, pad_width: [[1, 0], [0, 0]], as: shifted}
  - {type: max_pool, in: x, window_shape: [2], strides: [2], padding: SAME, as: pooled}
  - {type: global_avg_pool, in: x, as: g}
outputs: [pos, mask, flat, cls, last, shifted, pooled, g]
"""
    report = nnx_build.check(text)
    shapes = {k: v["shape"] for k, v in report.outputs.items()}
    assert shapes["pos"] == ["batch", "seq"]
    assert shapes["mask"] == ["batch", 1, "seq", "seq"]
    assert shapes["flat"] == ["batch", "seq", 4]
    assert shapes["cls"] == ["batch", 1, 8]
    assert shapes["last"] == ["batch", 8]
    assert shapes["shifted"] == ["batch", "seq + 1", 8]
    assert shapes["g"] == ["batch", 8]
    assert shapes["pooled"][0] == "batch" and shapes["pooled"][2] == 8

    model = nnx_build.build(text)
    x = RNG.standard_normal((2, 6, 8)).astype(np.float32)
    ids = np.array([[3, 1, 2, 0, 0, 0], [1, 2, 3, 4, 5, 6]], np.int32)
    pos_, mask, flat, cls, last, shifted, pooled, g = model(x=x, ids=ids)
    np.testing.assert_array_equal(pos_, np.broadcast_to(np.arange(6), (2, 6)))
    want_mask = np.tril(np.ones((6, 6), bool))[None, None] & (ids != 0)[:, None, :, None] & (ids != 0)[:, None, None, :]
    np.testing.assert_array_equal(mask, want_mask)
    h = x.reshape(2, 6, 2, 4)
    # fully masked rows (padding queries) differ between implementations; compare the rest
    want = np_attention(h[..., :2], h[..., :2], h[..., 2:], want_mask).reshape(2, 6, 4)
    keep = ids != 0
    np.testing.assert_allclose(np.asarray(flat)[keep], want[keep], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(cls, x[:, :1])
    np.testing.assert_allclose(last, x[:, -1])
    np.testing.assert_allclose(shifted, np.pad(x, [(0, 0), (1, 0), (0, 0)]))
    np.testing.assert_allclose(pooled, x.reshape(2, 3, 2, 8).max(axis=2))
    np.testing.assert_allclose(g, x.mean(axis=1), rtol=1e-5, atol=1e-6)


def test_learned_position_embedding_pattern() -> None:
    text = """format: 1
name: t
inputs: {ids: {shape: [batch, 5], dtype: int32}}
layers:
  - tok: {type: Embed, num_embeddings: 11, features: 4}
  - {type: positions, in: ids, as: p}
  - pos_emb: {type: Embed, num_embeddings: 5, features: 4, in: p}
  - {type: add, in: [tok, pos_emb]}
"""
    model = nnx_build.build(text)
    ids = np.arange(10, dtype=np.int32).reshape(2, 5)
    out = model(ids)
    tok = np.asarray(model.tok.embedding[...])
    pe = np.asarray(model.pos_emb.embedding[...])
    np.testing.assert_allclose(out, tok[ids] + pe[None, :5], rtol=1e-6)
    (out_shape,) = (o["shape"] for o in nnx_build.check(text).outputs.values())
    assert out_shape == ["batch", 5, 4]
