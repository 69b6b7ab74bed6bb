"""Depth: export plus compile time of a scanned transformer stays flat in depth.

A GPT-2-style decoder (d_model 256, 8 heads, vocabulary 4096, causal attention, gelu MLP;
the blocks written once in the spec) with 4 and 48 blocks, each stacked with
``scan: true`` and, for comparison, unrolled (``repeat`` without scan). Per
configuration, in one process with ``jax.clear_caches()`` before each measurement and
the configurations interleaved (s4, s48, u4, u48, s4, ...) after one untimed pass, medians
over repetitions of:

* ``export_s``: trace, lower and serialize with ``jax.export`` (weights as arguments, as
  ``nnx-build export --weights-as-args``; weights as constants would add a cost
  proportional to the weight bytes, which says nothing about depth), batch symbolic;
* ``compile_s``: deserialize that artifact and compile it with XLA for batch 1 x 64;
* ``total_s``: their sum.

Target: scanned 48 blocks at most 1.3x the scanned 4 blocks. The abstract check
(``check_s``) and building the weights (``build_s``) are timed once per configuration and
are not part of the target.

Usage: python benchmarks/depth.py [--reps 3] [--depths 4,48] [--no-unrolled] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import _common  # noqa: F401
from _common import write_result

SPEC = """\
format: 1
name: gpt_depth
seed: 0
args: {{vocab: 4096, context: 512, d_model: 256, heads: 8, layers: {layers}, dropout: 0.1}}
inputs:
  tokens: {{shape: [batch, seq], dtype: int32}}
blocks:
  Block:
    args: {{d_model: int, heads: int, dropout: float}}
    inputs: [x]
    layers:
      - mask: {{type: causal_mask, in: x}}
      - ln_1: {{type: LayerNorm, num_features: "${{d_model}}", epsilon: 1.0e-5, in: x}}
      - attn:
          type: MultiHeadAttention
          num_heads: "${{heads}}"
          in_features: "${{d_model}}"
          dropout_rate: "${{dropout}}"
          in: {{inputs_q: ln_1, mask: mask}}
      - attn_drop: {{type: Dropout, rate: "${{dropout}}"}}
      - h: {{type: add, in: [x, attn_drop]}}
      - ln_2: {{type: LayerNorm, num_features: "${{d_model}}", epsilon: 1.0e-5}}
      - fc: {{type: Linear, in_features: "${{d_model}}", out_features: "${{4 * d_model}}"}}
      - {{type: gelu, approximate: true}}
      - proj: {{type: Linear, in_features: "${{4 * d_model}}", out_features: "${{d_model}}"}}
      - mlp_drop: {{type: Dropout, rate: "${{dropout}}"}}
      - out: {{type: add, in: [h, mlp_drop]}}
layers:
  - wte: {{type: Embed, num_embeddings: "${{vocab}}", features: "${{d_model}}", in: tokens}}
  - pos: {{type: positions, axis: 1, in: tokens}}
  - wpe: {{type: Embed, num_embeddings: "${{context}}", features: "${{d_model}}"}}
  - embed: {{type: add, in: [wte, wpe]}}
  - drop: {{type: Dropout, rate: "${{dropout}}"}}
  - h: {{type: Block, repeat: "${{layers}}", scan: {scan}, d_model: "${{d_model}}", heads: "${{heads}}", dropout: "${{dropout}}"}}
  - ln_f: {{type: LayerNorm, num_features: "${{d_model}}", epsilon: 1.0e-5}}
  - logits: {{type: call, module: wte, method: attend}}
outputs: [logits]
"""


def spec_text(layers: int, scan: bool) -> str:
    return SPEC.format(layers=layers, scan="true" if scan else "false")


def measure(ff, seq: int) -> dict:
    import jax
    import jax.numpy as jnp
    from jax import export

    from nnx_build.exporters.common import symbolic_args

    jax.clear_caches()
    wspec = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in ff.weights.items()}
    t0 = time.perf_counter()
    exp = export.export(jax.jit(ff.pure), platforms=("cpu",))(wspec, *symbolic_args(ff.inputs))
    blob = exp.serialize()
    t1 = time.perf_counter()
    again = export.deserialize(blob)
    jax.jit(again.call).lower(wspec, jax.ShapeDtypeStruct((1, seq), jnp.int32)).compile()
    t2 = time.perf_counter()
    return {"export_s": t1 - t0, "compile_s": t2 - t1, "total_s": t2 - t0, "artifact_bytes": len(blob), "mlir_chars": len(exp.mlir_module())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--depths", default="4,48")
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--no-unrolled", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import nnx_build

    depths = [int(d) for d in args.depths.split(",")]
    configs = [(d, True) for d in depths] + ([] if args.no_unrolled else [(d, False) for d in depths])
    forwards, info = {}, {}
    for d, scan in configs:
        key = f"{'scan' if scan else 'unrolled'}_{d}"
        t0 = time.perf_counter()
        report = nnx_build.check(spec_text(d, scan))
        t1 = time.perf_counter()
        model = nnx_build.build(spec_text(d, scan), check=False)
        forwards[key] = nnx_build.fast_forward(model)
        t2 = time.perf_counter()
        info[key] = {"layers": d, "scan": scan, "params": report.total_params, "check_s": round(t1 - t0, 2), "build_s": round(t2 - t1, 2)}
    for ff in forwards.values():  # one untimed pass: the first export and compile also load code
        measure(ff, args.seq)
    samples: dict[str, list[dict]] = {k: [] for k in forwards}
    for _ in range(args.reps):  # interleaved: every configuration once per repetition
        for key, ff in forwards.items():
            samples[key].append(measure(ff, args.seq))
    results = {}
    for key, runs in samples.items():
        results[key] = {
            **info[key],
            **{m: round(statistics.median(r[m] for r in runs), 3) for m in ("export_s", "compile_s", "total_s")},
            "total_s_all": [round(r["total_s"], 3) for r in runs],
            "artifact_bytes": runs[0]["artifact_bytes"],
            "mlir_chars": runs[0]["mlir_chars"],
        }
    lo, hi = min(depths), max(depths)
    ratios = {"scan": round(results[f"scan_{hi}"]["total_s"] / results[f"scan_{lo}"]["total_s"], 3)}
    if not args.no_unrolled:
        ratios["unrolled"] = round(results[f"unrolled_{hi}"]["total_s"] / results[f"unrolled_{lo}"]["total_s"], 3)
        ratios[f"unrolled_over_scan_at_{hi}"] = round(results[f"unrolled_{hi}"]["total_s"] / results[f"scan_{hi}"]["total_s"], 3)
        ratios[f"mlir_size_unrolled_over_scan_at_{hi}"] = round(
            results[f"unrolled_{hi}"]["mlir_chars"] / results[f"scan_{hi}"]["mlir_chars"], 1
        )
    write_result(
        "depth",
        {
            "reps": args.reps,
            "seq": args.seq,
            "results": results,
            f"ratio_{hi}_over_{lo}": ratios,
            "target": {f"scan_{hi}_over_{lo}_max": 1.3},
            "met": ratios["scan"] <= 1.3,
        },
        args.out,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
