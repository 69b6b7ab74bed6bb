"""Parity: a built model against the same architecture written by hand in Flax NNX.

Both run through ``jax.jit`` of a pure function of their weights: the built model through
``nnx_build.fast_forward`` (its ``fn(weights, x)``), the hand-written one the way an NNX
user writes it (``nnx.split`` once in eval mode, ``jax.jit(lambda state, x: nnx.merge(g, state)(x))``).
For each model this script

* checks the outputs agree (same seed, same weights: max abs difference recorded);
* times both in interleaved rounds (medians; target: built / hand <= 1.02);
* compares ``jax.jit(f).lower(w, x).compile().as_text()`` of both after normalising names
  and metadata: identical, or how they differ (line and opcode counts, first differing lines).

Models: ``mlp`` — the seed model's architecture (Linear, BatchNorm, Dropout, relu, Linear)
widened to 1024 -> 4096 -> 1024 at batch 256; ``gpt`` — a GPT-2-style decoder (token and
position embeddings, 4 pre-LayerNorm blocks with causal MultiHeadAttention and a gelu MLP,
stacked with ``scan``, tied output projection), d_model 256, 8 heads, vocabulary 4096,
batch 4 x 128 tokens.

Usage: python benchmarks/parity.py [--rounds 20] [--models mlp,gpt] [--out FILE]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _common  # noqa: F401
from _common import compare_hlo, write_result

MLP_SPEC = """\
format: 1
name: model
seed: 0
args: {din: 1024, dmid: 4096, dout: 1024}
inputs:
  x: {shape: [batch, "${din}"], dtype: float32}
layers:
  - linear: {type: Linear, in_features: "${din}", out_features: "${dmid}"}
  - bn: {type: BatchNorm, num_features: "${dmid}"}
  - dropout: {type: Dropout, rate: 0.2}
  - relu
  - linear_out: {type: Linear, in_features: "${dmid}", out_features: "${dout}"}
outputs: [linear_out]
"""

GPT_SPEC = """\
format: 1
name: gpt
seed: 0
args: {vocab: 4096, context: 512, d_model: 256, heads: 8, layers: 4, dropout: 0.1}
inputs:
  tokens: {shape: [batch, seq], dtype: int32}
blocks:
  Block:
    args: {d_model: int, heads: int, dropout: float}
    inputs: [x]
    layers:
      - mask: {type: causal_mask, in: x}
      - ln_1: {type: LayerNorm, num_features: "${d_model}", epsilon: 1.0e-5, in: x}
      - attn:
          type: MultiHeadAttention
          num_heads: "${heads}"
          in_features: "${d_model}"
          dropout_rate: "${dropout}"
          in: {inputs_q: ln_1, mask: mask}
      - attn_drop: {type: Dropout, rate: "${dropout}"}
      - h: {type: add, in: [x, attn_drop]}
      - ln_2: {type: LayerNorm, num_features: "${d_model}", epsilon: 1.0e-5}
      - fc: {type: Linear, in_features: "${d_model}", out_features: "${4 * d_model}"}
      - {type: gelu, approximate: true}
      - proj: {type: Linear, in_features: "${4 * d_model}", out_features: "${d_model}"}
      - mlp_drop: {type: Dropout, rate: "${dropout}"}
      - out: {type: add, in: [h, mlp_drop]}
layers:
  - wte: {type: Embed, num_embeddings: "${vocab}", features: "${d_model}", in: tokens}
  - pos: {type: positions, axis: 1, in: tokens}
  - wpe: {type: Embed, num_embeddings: "${context}", features: "${d_model}"}
  - embed: {type: add, in: [wte, wpe]}
  - drop: {type: Dropout, rate: "${dropout}"}
  - h: {type: Block, repeat: "${layers}", scan: true, d_model: "${d_model}", heads: "${heads}", dropout: "${dropout}"}
  - ln_f: {type: LayerNorm, num_features: "${d_model}", epsilon: 1.0e-5}
  - logits: {type: call, module: wte, method: attend}
outputs: [logits]
"""


def hand_written():
    """The hand-written NNX twins (attributes created in spec order: same weights per seed)."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    class Model(nnx.Module):
        def __init__(self, din, dmid, dout, *, rngs):
            self.linear = nnx.Linear(din, dmid, rngs=rngs)
            self.bn = nnx.BatchNorm(dmid, rngs=rngs)
            self.dropout = nnx.Dropout(0.2, rngs=rngs)
            self.linear_out = nnx.Linear(dmid, dout, rngs=rngs)

        def __call__(self, x):
            x = nnx.relu(self.dropout(self.bn(self.linear(x))))
            return self.linear_out(x)

    class Block(nnx.Module):
        def __init__(self, d, heads, dropout, *, rngs):
            self.ln_1 = nnx.LayerNorm(d, epsilon=1e-5, rngs=rngs)
            self.attn = nnx.MultiHeadAttention(num_heads=heads, in_features=d, dropout_rate=dropout, decode=False, rngs=rngs)
            self.attn_drop = nnx.Dropout(dropout, rngs=rngs)
            self.ln_2 = nnx.LayerNorm(d, epsilon=1e-5, rngs=rngs)
            self.fc = nnx.Linear(d, 4 * d, rngs=rngs)
            self.proj = nnx.Linear(4 * d, d, rngs=rngs)
            self.mlp_drop = nnx.Dropout(dropout, rngs=rngs)

        def __call__(self, x):
            mask = nnx.make_causal_mask(jnp.zeros(x.shape[:2], jnp.int8), dtype=jnp.bool_)
            h = x + self.attn_drop(self.attn(self.ln_1(x), mask=mask))
            return h + self.mlp_drop(self.proj(nnx.gelu(self.fc(self.ln_2(h)), approximate=True)))

    class GPT(nnx.Module):
        def __init__(self, vocab, context, d, heads, layers, dropout, *, rngs):
            self.wte = nnx.Embed(vocab, d, rngs=rngs)
            self.wpe = nnx.Embed(context, d, rngs=rngs)
            self.drop = nnx.Dropout(dropout, rngs=rngs)

            @nnx.split_rngs(splits=layers)
            @nnx.vmap(in_axes=(0,), out_axes=0)
            def create(r):
                return Block(d, heads, dropout, rngs=r)

            self.h = create(rngs)
            self.ln_f = nnx.LayerNorm(d, epsilon=1e-5, rngs=rngs)

        def __call__(self, tokens):
            pos = jax.lax.broadcasted_iota(jnp.int32, tokens.shape, 1)
            x = self.drop(self.wte(tokens) + self.wpe(pos))

            @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
            def body(x, block):
                return block(x)

            x = body(x, self.h)
            return self.wte.attend(self.ln_f(x))

    return {
        "mlp": lambda rngs: Model(1024, 4096, 1024, rngs=rngs),
        "gpt": lambda rngs: GPT(4096, 512, 256, 8, 4, 0.1, rngs=rngs),
    }


def run(name: str, spec: str, make_hand, x, rounds: int) -> dict:
    import jax
    import numpy as np
    from flax import nnx

    import nnx_build
    from nnx_build.bench import interleaved, paired_ratio

    built = nnx_build.build(spec)
    fn, weights = nnx_build.fast_forward(built)

    hand = make_hand(nnx.Rngs(0))
    hand.eval()
    graphdef, hand_weights = nnx.split(hand)  # the whole state (RNG keys and counts too)

    def hand_pure(w, x):
        return nnx.merge(graphdef, w)(x)

    hand_fn = jax.jit(hand_pure)
    x = jax.device_put(x)
    y_built = np.asarray(fn(weights, x))
    y_hand = np.asarray(hand_fn(hand_weights, x))
    max_abs = float(np.max(np.abs(y_built - y_hand)))

    cases = {"built": lambda: fn(weights, x), "hand": lambda: hand_fn(hand_weights, x)}
    t = interleaved(cases, rounds=rounds, warmup=3, min_sample_s=0.05)
    ratio = paired_ratio(t, "built", "hand")

    hlo_built = jax.jit(fn).lower(weights, x).compile().as_text()
    hlo_hand = jax.jit(hand_pure).lower(hand_weights, x).compile().as_text()
    return {
        "params": sum(int(np.prod(v.shape)) for v in weights.values()),
        "input": {"shape": list(x.shape), "dtype": str(x.dtype)},
        "max_abs_diff": max_abs,
        "ms": {k: round(v.median * 1e3, 4) for k, v in t.items()},
        "ms_p10_p90": {k: [round(v.p10 * 1e3, 4), round(v.p90 * 1e3, 4)] for k, v in t.items()},
        "calls_per_round": {k: v.calls_per_round for k, v in t.items()},
        "ratio_built_over_hand": round(ratio, 4),
        "ratio_of_medians": round(t["built"].median / t["hand"].median, 4),
        "met": ratio <= 1.02,
        "hlo": compare_hlo(hlo_built, hlo_hand),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--models", default="mlp,gpt")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import numpy as np

    rng = np.random.default_rng(0)
    hands = hand_written()
    inputs = {
        "mlp": (MLP_SPEC, rng.standard_normal((256, 1024)).astype(np.float32)),
        "gpt": (GPT_SPEC, rng.integers(0, 4096, (4, 128)).astype(np.int32)),
    }
    results = {}
    for name in args.models.split(","):
        spec, x = inputs[name]
        results[name] = run(name, spec, hands[name], x, args.rounds)
    write_result(
        "parity",
        {"rounds": args.rounds, "target": {"ratio_built_over_hand_max": 1.02}, "models": results},
        args.out,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
