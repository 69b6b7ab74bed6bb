"""Every registered layer against the same layer written by hand in Flax NNX.

In the spirit of Keras' ``run_layer_test``: each row of ``ROWS`` gives a one-step spec
(the step's fields), its inputs, and a hand-written constructor of the same NNX layer.
For every row the built layer must

* be an instance of the registered NNX class (and of the hand-written layer's class),
* have the same variable tree: paths, variable types, shapes and dtypes,
* hold identical values when both are created from seed 0 (``nnx.Rngs(0)`` by hand,
  ``seed: 0`` in the spec, where the layer is the model's only module),
* compute the same outputs in eval mode once the hand-written state is copied in.

``test_every_layer_has_a_row`` fails when a layer is registered without a row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from flax import linen, nnx

import nnx_build
from nnx_build import registry
from nnx_build.layers.bridge import LinenLayer

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Row:
    """One layer test.

    Attributes:
      type: the registered ``type`` tag.
      fields: the step's layer fields (``type`` excluded).
      hand: builds the same layer by hand from an ``nnx.Rngs``.
      inputs: spec inputs: name -> (shape, dtype); integer inputs draw from ``[0, high)``.
      in_: the step's ``in:`` (a list is positional, a mapping names keyword inputs);
        ``None`` feeds the single input ``x``.
      call: compares ``call(layer, arrays)`` instead of the spec's forward, for layers a
        spec cannot feed from its inputs alone (an LSTM cell's carry is a pair, which
        only another step such as an ``RNN`` with ``return_carry`` produces); the spec is
        then built without the abstract check, which would call the layer on ``x``.
      id: distinguishes several rows of one type.
    """

    type: str
    fields: dict[str, Any]
    hand: Callable[[nnx.Rngs], Any]
    inputs: dict[str, tuple[Shape, str]] = field(default_factory=lambda: {"x": ((2, 3), "float32")})
    in_: list[str] | dict[str, str] | None = None
    call: Callable[[Any, dict[str, Any]], Any] | None = None
    high: int = 10
    id: str = ""

    @property
    def name(self) -> str:
        return self.type + (f"-{self.id}" if self.id else "")


def _with_cache(module: nnx.MultiHeadAttention, shape: Shape) -> nnx.MultiHeadAttention:
    module.init_cache(shape)
    return module


def _lstm_step(layer: Any, a: dict[str, Any]) -> Any:
    carry = (jnp.full((2, 4), 0.3), jnp.full((2, 4), -0.2))
    return layer(carry, a["x"])


SEQ = {"x": ((2, 5, 3), "float32")}

ROWS: list[Row] = [
    # ---- linear ----
    Row("Linear", {"in_features": 3, "out_features": 4}, lambda r: nnx.Linear(3, 4, rngs=r)),
    Row(
        "Linear",
        {"in_features": 3, "out_features": 4, "use_bias": False, "kernel_init": {"type": "normal", "stddev": 0.5}},
        lambda r: nnx.Linear(3, 4, use_bias=False, kernel_init=jax.nn.initializers.normal(0.5), rngs=r),
        id="options",
    ),
    Row(
        "LinearGeneral",
        {"in_features": [5, 3], "out_features": [2, 2], "axis": [-2, -1]},
        lambda r: nnx.LinearGeneral((5, 3), (2, 2), axis=(-2, -1), rngs=r),
        inputs=SEQ,
    ),
    Row(
        "LinearGeneral",
        {"in_features": 3, "out_features": 4, "batch_axis": {0: 2}},
        lambda r: nnx.LinearGeneral(3, 4, batch_axis={0: 2}, rngs=r),
        inputs=SEQ,
        id="batch_axis",
    ),
    Row(
        "Einsum",
        {"einsum_str": "btd,dh->bth", "kernel_shape": [3, 6], "bias_shape": [6]},
        lambda r: nnx.Einsum("btd,dh->bth", (3, 6), (6,), rngs=r),
        inputs=SEQ,
    ),
    Row(
        "LoRA",
        {"in_features": 3, "lora_rank": 2, "out_features": 4, "b_initializer": {"type": "normal", "stddev": 0.1}},
        lambda r: nnx.LoRA(3, 2, 4, b_initializer=jax.nn.initializers.normal(0.1), rngs=r),
    ),
    Row(
        "LoRALinear",
        {"in_features": 3, "out_features": 4, "lora_rank": 2, "use_bias": False},
        lambda r: nnx.LoRALinear(3, 4, lora_rank=2, use_bias=False, rngs=r),
    ),
    Row(
        "Embed",
        {"num_embeddings": 10, "features": 4},
        lambda r: nnx.Embed(10, 4, rngs=r),
        inputs={"x": ((2, 5), "int32")},
    ),
    # ---- convolution ----
    Row("Conv", {"in_features": 3, "out_features": 4, "kernel_size": 3}, lambda r: nnx.Conv(3, 4, 3, rngs=r), inputs=SEQ),
    Row(
        "ConvTranspose",
        {"in_features": 3, "out_features": 4, "kernel_size": [3], "strides": 2, "padding": "VALID"},
        lambda r: nnx.ConvTranspose(3, 4, (3,), strides=2, padding="VALID", rngs=r),
        inputs=SEQ,
    ),
    # ---- normalisation and regularisation ----
    Row("BatchNorm", {"num_features": 3}, lambda r: nnx.BatchNorm(3, rngs=r), inputs=SEQ),
    Row("LayerNorm", {"num_features": 3}, lambda r: nnx.LayerNorm(3, rngs=r), inputs=SEQ),
    Row("RMSNorm", {"num_features": 3, "epsilon": 1e-5}, lambda r: nnx.RMSNorm(3, epsilon=1e-5, rngs=r), inputs=SEQ),
    Row(
        "GroupNorm",
        {"num_features": 4, "num_groups": 2},
        lambda r: nnx.GroupNorm(4, num_groups=2, rngs=r),
        inputs={"x": ((2, 5, 4), "float32")},
    ),
    Row(
        "GroupNorm",
        {"num_features": 4, "group_size": 2},
        lambda r: nnx.GroupNorm(4, num_groups=None, group_size=2, rngs=r),
        inputs={"x": ((2, 5, 4), "float32")},
        id="group_size",
    ),
    Row("InstanceNorm", {"num_features": 3}, lambda r: nnx.InstanceNorm(3, rngs=r), inputs=SEQ),
    Row("Dropout", {"rate": 0.5}, lambda r: nnx.Dropout(0.5, rngs=r)),
    Row("PReLU", {"negative_slope_init": 0.2}, lambda r: nnx.PReLU(0.2)),
    # ---- attention ----
    Row(
        "MultiHeadAttention",
        {"num_heads": 2, "in_features": 4},
        lambda r: nnx.MultiHeadAttention(2, 4, decode=False, rngs=r),
        inputs={"x": ((2, 3, 4), "float32")},
    ),
    Row(
        "MultiHeadAttention",
        {"num_heads": 2, "in_features": 4, "in_kv_features": 6, "qkv_features": 8, "out_features": 5},
        lambda r: nnx.MultiHeadAttention(2, 4, 8, 5, in_kv_features=6, decode=False, rngs=r),
        inputs={"q": ((2, 3, 4), "float32"), "kv": ((2, 5, 6), "float32"), "m": ((2, 1, 3, 5), "bool")},
        in_={"inputs_q": "q", "inputs_k": "kv", "mask": "m"},
        id="named",
    ),
    Row(
        "MultiHeadAttention",
        {"num_heads": 4, "num_kv_heads": 2, "in_features": 8, "normalize_qk": True, "dropout_rate": 0.1, "use_bias": False},
        lambda r: nnx.MultiHeadAttention(
            4, 8, num_kv_heads=2, normalize_qk=True, dropout_rate=0.1, use_bias=False, decode=False, rngs=r
        ),
        inputs={"q": ((2, 3, 8), "float32"), "kv": ((2, 5, 8), "float32")},
        in_=["q", "kv", "kv"],
        id="gqa",
    ),
    Row(
        "MultiHeadAttention",
        {"num_heads": 2, "in_features": 4, "decode": True, "init_cache": [2, 6, 4]},
        lambda r: _with_cache(nnx.MultiHeadAttention(2, 4, decode=True, rngs=r), (2, 6, 4)),
        inputs={"x": ((2, 1, 4), "float32")},
        id="decode",
    ),
    # ---- recurrent ----
    Row(
        "LSTMCell",
        {"in_features": 3, "hidden_features": 4},
        lambda r: nnx.LSTMCell(3, 4, rngs=r),
        call=_lstm_step,
    ),
    Row(
        "OptimizedLSTMCell",
        {"in_features": 3, "hidden_features": 4, "activation_fn": "relu"},
        lambda r: nnx.OptimizedLSTMCell(3, 4, activation_fn=nnx.relu, rngs=r),
        call=_lstm_step,
    ),
    Row(
        "GRUCell",
        {"in_features": 3, "hidden_features": 4, "gate_fn": "hard_sigmoid"},
        lambda r: nnx.GRUCell(3, 4, gate_fn=nnx.hard_sigmoid, rngs=r),
        inputs={"h": ((2, 4), "float32"), "x": ((2, 3), "float32")},
        in_=["h", "x"],
    ),
    Row(
        "SimpleCell",
        {"in_features": 3, "hidden_features": 4, "activation_fn": "relu", "residual": True},
        lambda r: nnx.SimpleCell(3, 4, activation_fn=nnx.relu, residual=True, rngs=r),
        inputs={"h": ((2, 4), "float32"), "x": ((2, 3), "float32")},
        in_=["h", "x"],
    ),
    Row(
        "RNN",
        {"cell": {"type": "LSTMCell", "in_features": 3, "hidden_features": 4}},
        lambda r: nnx.RNN(nnx.LSTMCell(3, 4, rngs=r)),
        inputs=SEQ,
    ),
    Row(
        "RNN",
        {
            "cell": {"type": "GRUCell", "in_features": 3, "hidden_features": 4},
            "return_carry": True,
            "reverse": True,
            "keep_order": True,
            "unroll": 2,
        },
        lambda r: nnx.RNN(nnx.GRUCell(3, 4, rngs=r), return_carry=True, reverse=True, keep_order=True, unroll=2),
        inputs=SEQ,
        id="options",
    ),
    Row(
        "RNN",
        {"cell": {"type": "SimpleCell", "in_features": 3, "hidden_features": 4}, "time_major": True},
        lambda r: nnx.RNN(nnx.SimpleCell(3, 4, rngs=r), time_major=True),
        inputs={"x": ((5, 2, 3), "float32")},
        id="time_major",
    ),
    Row(
        "Bidirectional",
        {
            "forward_rnn": {"cell": {"type": "GRUCell", "in_features": 3, "hidden_features": 4}},
            "backward_rnn": {"type": "RNN", "cell": {"type": "OptimizedLSTMCell", "in_features": 3, "hidden_features": 2}},
        },
        lambda r: nnx.Bidirectional(nnx.RNN(nnx.GRUCell(3, 4, rngs=r)), nnx.RNN(nnx.OptimizedLSTMCell(3, 2, rngs=r))),
        inputs=SEQ,
    ),
    Row(
        "Bidirectional",
        {
            "forward_rnn": {"cell": {"type": "LSTMCell", "in_features": 3, "hidden_features": 2}},
            "backward_rnn": {"cell": {"type": "LSTMCell", "in_features": 3, "hidden_features": 2}},
            "return_carry": True,
        },
        lambda r: nnx.Bidirectional(
            nnx.RNN(nnx.LSTMCell(3, 2, rngs=r)), nnx.RNN(nnx.LSTMCell(3, 2, rngs=r)), return_carry=True
        ),
        inputs=SEQ,
        id="carry",
    ),
    # ---- Linen through nnx.bridge (nnx_build/layers/bridge.py) ----
    Row(
        "Linen",
        {"layer": "Dense", "args": {"features": 4}, "in_shape": [3]},
        # LinenLayer is nnx.bridge.ToNNX plus train()/eval() control of Linen's call arguments
        lambda r: LinenLayer(linen.Dense(4), rngs=r).lazy_init(jnp.zeros((1, 3))),
    ),
]


# ---- helpers -----------------------------------------------------------------------------


def spec_text(row: Row, *, seed: int = 0, kinds: dict[str, Any] | None = None, step_kinds: dict[str, str] | None = None) -> str:
    step: dict[str, Any] = {"type": row.type, **row.fields}
    if row.in_ is not None:
        step["in"] = row.in_
    if step_kinds:
        step["kinds"] = step_kinds
    spec: dict[str, Any] = {"format": 1, "name": "t", "seed": seed}
    if kinds:
        spec["kinds"] = kinds
    spec["inputs"] = {n: {"shape": list(s), "dtype": d} for n, (s, d) in row.inputs.items()}
    spec["layers"] = [{"layer": step}]
    spec["outputs"] = ["x"] if row.call is not None else ["layer"]
    return yaml.safe_dump(spec, sort_keys=False)


def arrays(row: Row) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {}
    for n, (shape, dtype) in row.inputs.items():
        if dtype == "bool":
            out[n] = jnp.asarray(rng.random(shape) > 0.3)
        elif dtype.startswith("int"):
            out[n] = jnp.asarray(rng.integers(0, row.high, shape), dtype=dtype)
        else:
            out[n] = jnp.asarray(rng.normal(size=shape), dtype=dtype)
    return out


def call_hand(row: Row, layer: Any, a: dict[str, Any]) -> Any:
    if row.call is not None:
        return row.call(layer, a)
    if isinstance(row.in_, dict):
        return layer(**{k: a[v] for k, v in row.in_.items()})
    if isinstance(row.in_, list):
        return layer(*(a[v] for v in row.in_))
    return layer(a["x"])


def call_built(row: Row, model: Any, a: dict[str, Any]) -> Any:
    if row.call is not None:
        return row.call(model.layer, a)
    return model(**a)


def flat(module: Any) -> dict[str, Any]:
    return {".".join(map(str, path)): var for path, var in nnx.to_flat_state(nnx.state(module))}


def describe(var: Any) -> tuple[str, Shape, str]:
    value = var.get_value()
    return type(var).__name__, tuple(value.shape), str(value.dtype)


def raw(value: Any) -> np.ndarray:
    if jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
        value = jax.random.key_data(value)
    return np.asarray(value)


def assert_trees_close(a: Any, b: Any) -> None:
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        assert x.shape == y.shape and x.dtype == y.dtype
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)


# ---- the table-driven tests ----------------------------------------------------------------


@pytest.fixture(scope="module", params=ROWS, ids=lambda r: r.name)
def pair(request: pytest.FixtureRequest) -> tuple[Row, Any, Any]:
    row: Row = request.param
    model = nnx_build.build(spec_text(row, seed=0), check=row.call is None)
    hand = row.hand(nnx.Rngs(0))
    return row, model, hand


def test_instance_of_nnx_class(pair: tuple[Row, Any, Any]) -> None:
    row, model, hand = pair
    entry = registry.get(row.type)
    assert entry is not None and entry.kind == "layer"
    assert isinstance(model.layer, entry.nnx_cls)
    assert type(model.layer) is type(hand)


def test_variable_tree_matches(pair: tuple[Row, Any, Any]) -> None:
    _, model, hand = pair
    built, written = flat(model.layer), flat(hand)
    assert sorted(built) == sorted(written)
    for path in written:
        assert describe(built[path]) == describe(written[path]), path


def test_same_seed_same_weights(pair: tuple[Row, Any, Any]) -> None:
    _, model, hand = pair
    built, written = flat(model.layer), flat(hand)
    for path, var in written.items():
        np.testing.assert_array_equal(raw(built[path].get_value()), raw(var.get_value()), err_msg=path)


def test_same_outputs_in_eval_mode(pair: tuple[Row, Any, Any]) -> None:
    row, model, hand = pair
    # copies of both, so the other tests see the freshly built layers
    model, hand = nnx.clone(model), nnx.clone(hand)
    nnx.update(model.layer, nnx.state(hand))
    model.eval()
    hand.eval()
    a = arrays(row)
    # under nnx.jit: one compilation instead of one per eager op (several times faster)
    got = nnx.jit(lambda m, a: call_built(row, m, a))(model, a)
    want = nnx.jit(lambda h, a: call_hand(row, h, a))(hand, a)
    assert_trees_close(got, want)


def test_other_seed_other_weights() -> None:
    row = ROWS[0]
    a, b = nnx_build.build(spec_text(row, seed=0)), nnx_build.build(spec_text(row, seed=1))
    assert not np.array_equal(a.layer.kernel[...], b.layer.kernel[...])


def test_every_layer_has_a_row() -> None:
    layers = {e.name for e in registry.entries() if e.kind == "layer"}
    covered = {r.type for r in ROWS}
    missing = sorted(layers - covered)
    assert not missing, f"registered layers without a row in tests/layers/test_catalogue.py ROWS: {missing}"
    stale = sorted(covered - layers)
    assert not stale, f"rows for types that are not registered layers: {stale}"


@pytest.mark.parametrize("entry", [e for e in registry.entries() if e.kind == "layer"], ids=lambda e: e.name)
def test_layer_config_documented(entry: registry.Entry) -> None:
    assert entry.doc, f"{entry.config.__name__} needs a docstring (the docs are generated from it)"
    assert entry.nnx_cls is not None


# ---- per-step kinds -------------------------------------------------------------------------

FROZEN = {"Frozen": {"base": "Param"}}


def test_kinds_on_linear() -> None:
    row = ROWS[0]
    model = nnx_build.build(spec_text(row, kinds=FROZEN, step_kinds={"kernel": "Frozen"}))
    kernel = model.layer.kernel
    assert type(kernel).__name__ == "Frozen"
    assert issubclass(type(kernel), nnx.Param)
    assert type(model.layer.bias) is nnx.Param
    # the value is kept, and the frozen kernel is filtered out of the plain params
    hand = row.hand(nnx.Rngs(0))
    np.testing.assert_array_equal(kernel[...], hand.kernel[...])
    frozen = nnx.state(model, type(kernel))
    assert [p for p, _ in nnx.to_flat_state(frozen)] == [("layer", "kernel")]
    trainable = nnx.state(model, nnx.All(nnx.Param, nnx.Not(type(kernel))))
    assert [p for p, _ in nnx.to_flat_state(trainable)] == [("layer", "bias")]


def test_kinds_on_nested_attention_variable() -> None:
    row = next(r for r in ROWS if r.type == "MultiHeadAttention")
    model = nnx_build.build(spec_text(row, kinds=FROZEN, step_kinds={"query.kernel": "Frozen", "out.bias": "LoRAParam"}))
    attn = model.layer
    assert type(attn.query.kernel).__name__ == "Frozen"
    assert issubclass(type(attn.query.kernel), nnx.Param)
    assert type(attn.out.bias) is nnx.LoRAParam
    assert type(attn.key.kernel) is nnx.Param
    a = arrays(row)
    hand = row.hand(nnx.Rngs(0))
    model.eval()
    hand.eval()
    assert_trees_close(model(**a), hand(a["x"]))


# ---- recurrent layers in context ---------------------------------------------------------------


def test_standalone_cell_continues_an_rnn() -> None:
    text = """
format: 1
name: t
inputs: {x: [batch, 5, 3], x_next: [batch, 3]}
layers:
  - rnn: {type: RNN, return_carry: true, as: [carry, y], in: x, cell: {type: LSTMCell, in_features: 3, hidden_features: 4}}
  - step: {type: LSTMCell, in: [carry, x_next], as: [carry2, y2], in_features: 3, hidden_features: 4}
outputs: [y, y2]
"""
    model = nnx_build.build(text)
    rngs = nnx.Rngs(0)  # created in spec order from one Rngs, as hand-written code would
    rnn = nnx.RNN(nnx.LSTMCell(3, 4, rngs=rngs), return_carry=True)
    cell = nnx.LSTMCell(3, 4, rngs=rngs)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, 3)), jnp.float32)
    y, y2 = model(x, x[:, 0])
    carry, want_y = rnn(x)
    _, want_y2 = cell(carry, x[:, 0])
    assert_trees_close((y, y2), (want_y, want_y2))
    report = nnx_build.check(text)
    assert report.outputs["y2"]["shape"] == ["batch", 4]


# ---- located errors of the layers' own checks ------------------------------------------------------

BAD = [
    ("{type: RNN, cell: {type: LSTMCell, in_features: 4, hidden_features: 4}}", "[batch, 5, 3]", "in_features=4"),
    ("{type: RNN, cell: {type: LSTMcell, in_features: 3, hidden_features: 4}}", "[batch, 5, 3]", "'LSTMCell'"),
    ("{type: RNN, cell: {type: GRUCell, in_features: 3, hidden_features: 4, gate_fn: sigmod}}", "[batch, 5, 3]", "did you mean 'sigmoid'"),
    ("{type: MultiHeadAttention, num_heads: 3, in_features: 4}", "[batch, 5, 4]", "divisible by num_heads"),
    ("{type: MultiHeadAttention, num_heads: 2, in_features: 4, decode: true}", "[batch, 1, 4]", "init_cache"),
    ("{type: MultiHeadAttention, num_heads: 2, in_features: 4, in: {inputs_q: x, maks: x}}", "[batch, 5, 4]", "no input 'maks'"),
    ("{type: LinearGeneral, in_features: [4, 3], out_features: 2, axis: [-2, -1]}", "[batch, 5, 3]", "size 4 on axis -2"),
    ("{type: GroupNorm, num_features: 6}", "[batch, 5, 6]", "divisible by num_groups (32)"),
    ("{type: GRUCell, in_features: 3, hidden_features: 4}", "[batch, 3]", "in: [carry, x]"),
]


@pytest.mark.parametrize(("step", "shape", "needle"), BAD, ids=[b[2] for b in BAD])
def test_bad_step_is_a_located_error(step: str, shape: str, needle: str) -> None:
    text = f"format: 1\nname: t\ninputs: {{x: {shape}}}\nlayers:\n  - layer: {step}\n"
    with pytest.raises(nnx_build.SpecErrors) as info:
        nnx_build.check(text)
    message = str(info.value)
    assert needle in message
    assert "<string>:5:" in message  # points at the step's line


def test_json_spec_batch_axis_keys() -> None:
    # JSON object keys are strings; {"0": 2} still names axis 0
    text = (
        '{"format": 1, "name": "t", "inputs": {"x": [2, 3]}, "layers": [{"layer": '
        '{"type": "LinearGeneral", "in_features": 3, "out_features": 4, "batch_axis": {"0": 2}}}]}\n'
    )
    model = nnx_build.build(text)
    hand = nnx.LinearGeneral(3, 4, batch_axis={0: 2}, rngs=nnx.Rngs(0))
    assert {p: describe(v) for p, v in flat(model.layer).items()} == {p: describe(v) for p, v in flat(hand).items()}
