"""The project's golden files are justified: hand-written Flax NNX modules, built with the
same seed, give the stored outputs on the stored inputs.

The goldens are written by ``nnx-build test --update-goldens`` from the specs; these
modules are written the way the Flax NNX documentation writes them, independently of
nnx-build, so a golden that agrees with them records what the architecture computes,
not only what nnx-build computed once.
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import nnx_build

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"


class Model(nnx.Module):
    """The seed's training model (specs/seed/model.yaml)."""

    def __init__(self, din: int, dmid: int, dout: int, *, rngs: nnx.Rngs):
        self.linear = nnx.Linear(din, dmid, rngs=rngs)
        self.bn = nnx.BatchNorm(dmid, rngs=rngs)
        self.dropout = nnx.Dropout(0.2, rngs=rngs)
        self.linear_out = nnx.Linear(dmid, dout, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.dropout(self.bn(self.linear(x))))
        return self.linear_out(x)


class AutoEncoder(nnx.Module):
    """The seed's auto-encoder (specs/seed/autoencoder.yaml)."""

    def __init__(self, input_dim: int, embed_dim: int, *, rngs: nnx.Rngs):
        self.encoder = nnx.Linear(input_dim, embed_dim, rngs=rngs)
        self.decoder = nnx.Linear(embed_dim, input_dim, rngs=rngs)

    def __call__(self, x):
        return self.decoder(self.encoder(x))


class LSTMClassifier(nnx.Module):
    """specs/zoo/lstm_classifier.yaml: Embed -> RNN(LSTMCell) -> last step -> Linear."""

    def __init__(self, vocab: int, embed: int, hidden: int, classes: int, *, rngs: nnx.Rngs):
        self.embed = nnx.Embed(vocab, embed, rngs=rngs)
        self.lstm = nnx.RNN(nnx.LSTMCell(embed, hidden, rngs=rngs))
        self.head = nnx.Linear(hidden, classes, rngs=rngs)

    def __call__(self, tokens):
        h = self.lstm(self.embed(tokens))
        return self.head(h[:, -1])


CASES = {
    # spec: (golden, hand-written module, output name)
    "seed/model.yaml": ("seed/goldens/model.npz", lambda: Model(2, 64, 3, rngs=nnx.Rngs(0)), "linear_out"),
    "seed/autoencoder.yaml": ("seed/goldens/autoencoder.npz", lambda: AutoEncoder(2, 10, rngs=nnx.Rngs(0)), "decoder"),
    "zoo/lstm_classifier.yaml": (
        "zoo/goldens/lstm_classifier.npz",
        lambda: LSTMClassifier(1000, 32, 64, 5, rngs=nnx.Rngs(0)),
        "head",
    ),
}


def _golden(path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    with np.load(path) as data:
        inputs = {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith("inputs/")}
        outputs = {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith("outputs/")}
    return inputs, outputs


@pytest.mark.parametrize("spec", sorted(CASES))
def test_golden_matches_hand_written_nnx(spec: str) -> None:
    golden, make, out_name = CASES[spec]
    inputs, outputs = _golden(SPECS / golden)
    case = next(c for c in nnx_build.load_spec(SPECS / spec).tests or [] if c.golden is not None)
    assert (SPECS / spec).parent / case.golden.file == SPECS / golden  # the spec reads this file
    hand = make()
    hand.eval()
    (x,) = inputs.values()
    y = np.asarray(hand(jnp.asarray(x)))
    np.testing.assert_allclose(y, outputs[out_name], rtol=case.golden.rtol, atol=case.golden.atol)


@pytest.mark.parametrize("spec", sorted(CASES))
def test_hand_written_weights_equal_the_spec_build(spec: str) -> None:
    """Same seed, same variables in the same order: the weights are equal, not just close."""
    _, make, _ = CASES[spec]
    hand = nnx.state(make(), nnx.Not(nnx.RngState))
    built = nnx.state(nnx_build.build(SPECS / spec), nnx.Not(nnx.RngState))
    hand_flat = {"/".join(map(str, p)): v.get_value() for p, v in nnx.to_flat_state(hand)}
    built_flat = {"/".join(map(str, p)): v.get_value() for p, v in nnx.to_flat_state(built)}
    assert hand_flat.keys() == built_flat.keys()
    for key, value in hand_flat.items():
        np.testing.assert_array_equal(np.asarray(built_flat[key]), np.asarray(value), err_msg=key)
