"""``repeat:`` with inputs shared by every copy (an attention mask), ``repeat: 0``, key padding masks.

A repeated block's outputs are the next copy's first inputs; the inputs after them
are given unchanged to every copy. Checked against the same NNX written by hand.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import nnx_build
from nnx_build import SpecErrors

ENCODER = """\
format: 1
name: encoder
seed: 3
inputs:
  x: [batch, 5, 8]
  pad: {{shape: [batch, 5], dtype: int32}}
blocks:
  layer:
    inputs: [h, mask]
    layers:
      - attn: {{type: MultiHeadAttention, num_heads: 2, in_features: 8, decode: false, in: {{inputs_q: h, mask: mask}}}}
      - res: {{type: add, in: [h, attn]}}
      - fc: {{type: Linear, in_features: 8, out_features: 8}}
layers:
  - m: {{type: key_padding_mask, in: pad}}
  - enc: {{type: layer, in: [x, m], repeat: {n}{scan}}}
"""


class Layer(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.attn = nnx.MultiHeadAttention(num_heads=2, in_features=8, decode=False, rngs=rngs)
        self.fc = nnx.Linear(8, 8, rngs=rngs)

    def __call__(self, h: jax.Array, mask: jax.Array) -> jax.Array:
        return self.fc(h + self.attn(h, mask=mask))


def bert_mask(pad: np.ndarray) -> jax.Array:
    # the (batch, 1, q, kv) form: every query row sees the real keys
    return nnx.make_attention_mask(jnp.ones_like(pad), pad)


def inputs() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).normal(size=(2, 5, 8)).astype(np.float32)
    pad = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.int32)
    return x, pad


def test_repeated_block_gets_the_mask_in_every_copy() -> None:
    model = nnx_build.build(ENCODER.format(n=3, scan=""))
    rngs = nnx.Rngs(3)
    layers = [Layer(rngs) for _ in range(3)]
    x, pad = inputs()
    h = jnp.asarray(x)
    for layer in layers:
        h = layer(h, bert_mask(pad))
    np.testing.assert_allclose(model(x, pad), h, rtol=1e-5, atol=1e-5)


def test_scanned_block_gets_the_mask_in_every_copy() -> None:
    model = nnx_build.build(ENCODER.format(n=3, scan=", scan: true"))

    @nnx.split_rngs(splits=3)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def create(r: nnx.Rngs) -> Layer:
        return Layer(r)

    stack = create(nnx.Rngs(3))
    graphdef, state = nnx.split(stack)
    x, pad = inputs()
    h = jnp.asarray(x)
    for i in range(3):  # copy i, sliced out of the stack, with the same mask
        h = nnx.merge(graphdef, jax.tree.map(lambda a, i=i: a[i], state))(h, bert_mask(pad))
    np.testing.assert_allclose(model(x, pad), h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jax.jit(lambda x, p: nnx_build.fast_forward(model)(x, p))(x, pad), h, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scan", ["", ", scan: true"])
def test_padding_keys_are_not_attended(scan: str) -> None:
    model = nnx_build.build(ENCODER.format(n=2, scan=scan))
    x, pad = inputs()
    y = np.asarray(model(x, pad))
    x2 = x.copy()
    x2[0, 3:] = 100.0  # change the padding tokens of the first sequence
    y2 = np.asarray(model(x2, pad))
    np.testing.assert_allclose(y2[0, :3], y[0, :3], rtol=1e-5, atol=1e-5)  # real tokens do not see them
    np.testing.assert_array_equal(y2[1], y[1])
    assert not np.allclose(model(x2, np.ones_like(pad))[0, :3], y[0, :3])  # unmasked, they would


TOO_MANY_OUTPUTS = """\
format: 1
name: m
inputs: {x: [batch, 4]}
blocks:
  layer:
    inputs: [h]
    layers:
      - fc: {type: Linear, in_features: 4, out_features: 4}
      - g: tanh
    outputs: [fc, g]
layers:
  - enc: {type: layer, repeat: 2}
"""


def test_block_returning_more_values_than_it_takes_is_located() -> None:
    with pytest.raises(SpecErrors) as info:
        nnx_build.check(TOO_MANY_OUTPUTS)
    (e,) = info.value.errors
    assert e.code == "bad-value" and e.path == ("layers", 0, "repeat")
    line = TOO_MANY_OUTPUTS.splitlines()[11]
    assert (e.loc.line, e.loc.col) == (12, line.index("repeat") + 1)
    assert "returns 2 values but receives 1 input(s)" in e.message


REPEAT_ZERO = """\
format: 1
name: stages
args: {blocks: 1}
inputs: {x: [batch, 4]}
blocks:
  layer:
    layers:
      - fc: {type: Linear, in_features: 4, out_features: 4}
layers:
  - first: {type: layer}
  - rest: {type: layer, repeat: "${blocks - 1}"}
  - rest_scanned: {type: layer, repeat: 0, scan: true}
"""


def test_repeat_zero_is_no_copy() -> None:
    model = nnx_build.build(REPEAT_ZERO)
    x = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_array_equal(model(x), model.first(x))
    report = nnx_build.check(REPEAT_ZERO)
    assert report.params == {"Param": 4 * 4 + 4}
    assert len(model.rest) == 0 and len(model.rest_scanned) == 0


def test_negative_repeat_is_refused() -> None:
    with pytest.raises(SpecErrors) as info:
        nnx_build.check(REPEAT_ZERO.replace("args: {blocks: 1}", "args: {blocks: 0}"))
    (e,) = info.value.errors
    assert e.code == "bad-value" and e.path == ("layers", 1, "repeat")
    assert "repeat must be an integer from 0 to 100000, received -1" in e.message


# ---- key_padding_mask ---------------------------------------------------------------------------

MASK = """\
format: 1
name: mask
inputs: {{pad: {{shape: [batch, 6], dtype: {dtype}}}}}
layers:
  - m: {{type: key_padding_mask{extra}}}
"""


@pytest.mark.parametrize("dtype", ["int32", "bool", "float32"])
def test_key_padding_mask_matches_numpy(dtype: str) -> None:
    pad = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]]).astype(dtype)
    mask = np.asarray(nnx_build.build(MASK.format(dtype=dtype, extra=""))(pad))
    expected = np.zeros((3, 1, 1, 6), bool)
    for b in range(3):
        for j in range(6):
            expected[b, 0, 0, j] = bool(pad[b, j])
    assert mask.dtype == np.bool_
    np.testing.assert_array_equal(mask, expected)


def test_key_padding_mask_from_token_ids() -> None:
    ids = np.array([[5, 7, 0, 0], [3, 0, 2, 9]], np.int32)
    mask = np.asarray(nnx_build.build(MASK.format(dtype="int32", extra=", pad_id: 0").replace("6]", "4]"))(ids))
    np.testing.assert_array_equal(mask[:, 0, 0], ids != 0)
    assert mask.shape == (2, 1, 1, 4)


def test_key_padding_mask_needs_a_2d_input() -> None:
    with pytest.raises(SpecErrors) as info:
        nnx_build.check(MASK.format(dtype="int32", extra="").replace("[batch, 6]", "[batch, 6, 2]"))
    assert "(batch, kv_len)" in info.value.errors[0].message


BERT = """\
format: 1
name: bert_block
seed: 1
inputs: {ids: {shape: [batch, 6], dtype: int32}}
layers:
  - m: {type: key_padding_mask, pad_id: 0, in: ids}
  - emb: {type: Embed, num_embeddings: 10, features: 8, in: ids}
  - attn: {type: MultiHeadAttention, num_heads: 2, in_features: 8, decode: false, in: {inputs_q: emb, mask: m}}
  - r1: {type: add, in: [emb, attn]}
  - ln1: {type: LayerNorm, num_features: 8}
  - fc1: {type: Linear, in_features: 8, out_features: 16}
  - gelu
  - fc2: {type: Linear, in_features: 16, out_features: 8}
  - r2: {type: add, in: [ln1, fc2]}
  - ln2: {type: LayerNorm, num_features: 8}
"""


def test_tiny_bert_block_matches_hand_written_nnx() -> None:
    model = nnx_build.build(BERT)
    rngs = nnx.Rngs(1)
    emb = nnx.Embed(10, 8, rngs=rngs)
    attn = nnx.MultiHeadAttention(num_heads=2, in_features=8, decode=False, rngs=rngs)
    ln1 = nnx.LayerNorm(8, rngs=rngs)
    fc1, fc2 = nnx.Linear(8, 16, rngs=rngs), nnx.Linear(16, 8, rngs=rngs)
    ln2 = nnx.LayerNorm(8, rngs=rngs)
    ids = np.array([[4, 2, 9, 0, 0, 0], [1, 3, 5, 7, 2, 8]], np.int32)
    e = emb(ids)
    h = ln1(e + attn(e, mask=nnx.make_attention_mask(jnp.ones_like(ids), ids != 0)))
    expected = ln2(h + fc2(nnx.gelu(fc1(h))))
    np.testing.assert_allclose(model(ids), expected, rtol=1e-5, atol=1e-5)
