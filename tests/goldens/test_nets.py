"""Goldens of a conv net with BatchNorm, an attention block and a small transformer
(specs/nets/), justified by hand-written Flax NNX modules.

The modules below are written the way the Flax NNX documentation writes them,
independently of nnx-build. Built with the same seed they hold the same weights as the
spec's build (checked bit for bit), give the stored golden outputs on the stored inputs,
and, for the conv net, stay equal to the built model through several optax steps in
train mode: predictions, parameters and BatchNorm running statistics. The transformer's
golden inputs hold every token id of its vocabulary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import nnx_build

NETS = Path(__file__).resolve().parents[2] / "specs" / "nets"


class ConvBN(nnx.Module):
    """specs/nets/conv_bn.yaml."""

    def __init__(self, channels: int, classes: int, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(2, channels, kernel_size=(3, 3), rngs=rngs)
        self.bn1 = nnx.BatchNorm(channels, momentum=0.9, rngs=rngs)
        self.conv2 = nnx.Conv(channels, 2 * channels, kernel_size=(3, 3), use_bias=False, rngs=rngs)
        self.bn2 = nnx.BatchNorm(2 * channels, momentum=0.8, epsilon=1e-3, rngs=rngs)
        self.head = nnx.Linear(4 * 4 * 2 * channels, classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.relu(self.bn1(self.conv1(x)))
        x = nnx.max_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = nnx.relu(self.bn2(self.conv2(x)))
        return self.head(x.reshape(x.shape[0], -1))


class Attention(nnx.Module):
    """specs/nets/attention.yaml: x + MHA(LayerNorm(x)) under a causal mask."""

    def __init__(self, d: int, heads: int, qkv: int, *, rngs: nnx.Rngs):
        self.ln = nnx.LayerNorm(d, epsilon=1e-5, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(heads, d, qkv_features=qkv, out_features=d, decode=False, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        mask = nnx.make_causal_mask(x[..., 0])
        return x + self.attn(self.ln(x), mask=mask)


class Block(nnx.Module):
    def __init__(self, d: int, heads: int, *, rngs: nnx.Rngs):
        self.ln_1 = nnx.LayerNorm(d, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(heads, d, decode=False, rngs=rngs)
        self.ln_2 = nnx.LayerNorm(d, rngs=rngs)
        self.fc = nnx.Linear(d, 4 * d, rngs=rngs)
        self.proj = nnx.Linear(4 * d, d, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = x + self.attn(self.ln_1(x), mask=nnx.make_causal_mask(x[..., 0]))
        return h + self.proj(nnx.gelu(self.fc(self.ln_2(h)), approximate=True))


class Transformer(nnx.Module):
    """specs/nets/transformer.yaml."""

    def __init__(self, vocab: int, context: int, d: int, heads: int, *, rngs: nnx.Rngs):
        self.wte = nnx.Embed(vocab, d, rngs=rngs)
        self.wpe = nnx.Embed(context, d, rngs=rngs)
        self.b1 = Block(d, heads, rngs=rngs)
        self.b2 = Block(d, heads, rngs=rngs)
        self.ln_f = nnx.LayerNorm(d, rngs=rngs)
        self.head = nnx.Linear(d, vocab, rngs=rngs)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
        x = self.wte(tokens) + self.wpe(positions)
        return self.head(self.ln_f(self.b2(self.b1(x))))


CASES: dict[str, tuple[Any, str]] = {
    # spec: (hand-written module, output name)
    "conv_bn": (lambda: ConvBN(4, 3, rngs=nnx.Rngs(0)), "head"),
    "attention": (lambda: Attention(8, 2, 12, rngs=nnx.Rngs(0)), "out"),
    "transformer": (lambda: Transformer(11, 6, 8, 2, rngs=nnx.Rngs(0)), "head"),
}


NOT_RNG = nnx.Not(nnx.RngState)


def _flat(module: nnx.Module, what: Any = NOT_RNG) -> dict[str, np.ndarray]:
    return {"/".join(map(str, p)): np.asarray(v.get_value()) for p, v in nnx.to_flat_state(nnx.state(module, what))}


def _golden_cases(spec: str) -> list[Any]:
    return [c for c in nnx_build.load_spec(NETS / f"{spec}.yaml").tests or [] if c.golden is not None]


GOLDENS = [(spec, case.name) for spec in sorted(CASES) for case in _golden_cases(spec)]


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    return {spec: nnx_build.build(NETS / f"{spec}.yaml") for spec in CASES}


@pytest.mark.parametrize("spec", sorted(CASES))
def test_same_seed_gives_the_same_weights(spec: str, built: dict[str, Any]) -> None:
    make, _ = CASES[spec]
    hand, ours = _flat(make()), _flat(built[spec])
    assert hand.keys() == ours.keys()
    for key, value in hand.items():
        np.testing.assert_array_equal(ours[key], value, err_msg=key)


def test_every_spec_has_a_golden() -> None:
    assert {spec for spec, _ in GOLDENS} == set(CASES)


@pytest.mark.parametrize(("spec", "case_name"), GOLDENS, ids=[f"{s}::{c}" for s, c in GOLDENS])
def test_golden_matches_hand_written_nnx(spec: str, case_name: str) -> None:
    case = next(c for c in _golden_cases(spec) if c.name == case_name)
    make, out_name = CASES[spec]
    with np.load(NETS / case.golden.file) as data:
        inputs = {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith("inputs/")}
        outputs = {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith("outputs/")}
    hand = make()
    if case.mode == "train":
        hand.train()
    else:
        hand.eval()
    (x,) = inputs.values()
    y = np.asarray(hand(jnp.asarray(x)))
    assert y.shape == outputs[out_name].shape
    np.testing.assert_allclose(y, outputs[out_name], rtol=case.golden.rtol, atol=case.golden.atol)


def test_transformer_golden_covers_the_whole_vocabulary() -> None:
    (case,) = _golden_cases("transformer")
    with np.load(NETS / case.golden.file) as data:
        tokens = data["inputs/tokens"]
    assert set(tokens.ravel().tolist()) == set(range(11))  # so a wrong embedding row cannot hide


def test_transformer_over_the_whole_vocabulary(built: dict[str, Any]) -> None:
    make, _ = CASES["transformer"]
    tokens = jnp.arange(12, dtype=jnp.int32).reshape(2, 6) % 11  # every id 0..10
    np.testing.assert_allclose(np.asarray(built["transformer"](tokens)), np.asarray(make()(tokens)), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_conv_bn_trains_like_hand_written_nnx() -> None:
    """Three Adam steps in train mode: the same predictions, parameters and running statistics."""
    ours = nnx_build.build(NETS / "conv_bn.yaml")
    hand, _ = CASES["conv_bn"]
    hand = hand()
    rng = np.random.default_rng(0)
    batches = [
        (jnp.asarray(rng.normal(1.0, 2.0, (4, 8, 8, 2)).astype(np.float32)), jnp.asarray(rng.integers(0, 3, 4)))
        for _ in range(3)
    ]

    def loss_fn(model: nnx.Module, x: jax.Array, y: jax.Array) -> jax.Array:
        return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

    @nnx.jit
    def step(model: nnx.Module, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array) -> jax.Array:
        loss, grads = nnx.value_and_grad(loss_fn)(model, x, y)
        optimizer.update(model, grads)
        return loss

    losses = {}
    for name, model in (("ours", ours), ("hand", hand)):
        model.train()
        optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
        losses[name] = [float(step(model, optimizer, x, y)) for x, y in batches]
    np.testing.assert_allclose(losses["ours"], losses["hand"], rtol=1e-5)
    assert losses["hand"][-1] != losses["hand"][0]  # the steps did change the model
    stats_ours, stats_hand = _flat(ours, nnx.BatchStat), _flat(hand, nnx.BatchStat)
    assert stats_ours.keys() == stats_hand.keys() == {"bn1/mean", "bn1/var", "bn2/mean", "bn2/var"}
    for key, value in stats_hand.items():
        assert not np.allclose(value, 0.0 if key.endswith("mean") else 1.0), key  # moved from the initial statistics
        np.testing.assert_allclose(stats_ours[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
    params_ours, params_hand = _flat(ours, nnx.Param), _flat(hand, nnx.Param)
    for key, value in params_hand.items():
        np.testing.assert_allclose(params_ours[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
    ours.eval()
    hand.eval()
    x = batches[0][0]
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(hand(x)), rtol=1e-5, atol=1e-5)
