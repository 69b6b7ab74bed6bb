"""Efficiency: a large MLP's forward against JAX's bare matmuls of the same shapes.

The built model is an MLP (``Linear 1024 -> 4096, gelu, Linear 4096 -> 1024`` twice, with
biases; 16.8 M parameters) at batch 256, through the fast path. Timed in interleaved
rounds against

* ``bare_matmul``: ``jax.jit`` of the same chain of matmuls, ``x @ W1 @ W2 @ W3 @ W4``
  (no bias, no activation): what JAX gets for those shapes on this machine;
* ``single_matmul``: one ``256 x 1024 @ 1024 x 4096`` matmul, for the machine's peak.

FLOP/s count the matmuls only (``2 * batch * sum(d_in * d_out)``) for both, so
``efficiency = flops_per_s(built) / flops_per_s(bare_matmul)``; target at least 0.70.

Usage: python benchmarks/efficiency.py [--rounds 20] [--batch 256] [--out FILE]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _common  # noqa: F401
from _common import write_result

SPEC = """\
format: 1
name: large_mlp
seed: 0
args: {{d: {d}, hidden: {hidden}}}
inputs:
  x: {{shape: [batch, "${{d}}"], dtype: float32}}
layers:
  - up_1: {{type: Linear, in_features: "${{d}}", out_features: "${{hidden}}"}}
  - gelu
  - down_1: {{type: Linear, in_features: "${{hidden}}", out_features: "${{d}}"}}
  - up_2: {{type: Linear, in_features: "${{d}}", out_features: "${{hidden}}"}}
  - gelu
  - down_2: {{type: Linear, in_features: "${{hidden}}", out_features: "${{d}}"}}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--d", type=int, default=1024)
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import jax
    import numpy as np

    import nnx_build
    from nnx_build.bench import interleaved, paired_ratio

    model = nnx_build.build(SPEC.format(d=args.d, hidden=args.hidden))
    fn, weights = nnx_build.fast_forward(model)
    names = ["up_1", "down_1", "up_2", "down_2"]
    kernels = [weights[f"{n}/kernel"] for n in names]
    x = jax.device_put(np.random.default_rng(0).standard_normal((args.batch, args.d)).astype(np.float32))

    @jax.jit
    def bare(ks, x):
        for k in ks:
            x = x @ k
        return x

    @jax.jit
    def single(k, x):
        return x @ k

    cases = {
        "built": lambda: fn(weights, x),
        "bare_matmul": lambda: bare(kernels, x),
        "single_matmul": lambda: single(kernels[0], x),
    }
    t = interleaved(cases, rounds=args.rounds, warmup=3, min_sample_s=0.2)
    flops = 2 * args.batch * sum(int(k.shape[0]) * int(k.shape[1]) for k in kernels)
    single_flops = 2 * args.batch * int(kernels[0].shape[0]) * int(kernels[0].shape[1])
    gflops = {
        "built": flops / t["built"].median / 1e9,
        "bare_matmul": flops / t["bare_matmul"].median / 1e9,
        "single_matmul": single_flops / t["single_matmul"].median / 1e9,
    }
    efficiency = 1.0 / paired_ratio(t, "built", "bare_matmul")
    write_result(
        "efficiency",
        {
            "batch": args.batch,
            "shapes": [list(map(int, k.shape)) for k in kernels],
            "params": sum(int(np.prod(v.shape)) for v in weights.values()),
            "matmul_gflop_per_call": round(flops / 1e9, 3),
            "rounds": args.rounds,
            "ms": {k: round(v.median * 1e3, 3) for k, v in t.items()},
            "ms_p10_p90": {k: [round(v.p10 * 1e3, 3), round(v.p90 * 1e3, 3)] for k, v in t.items()},
            "gflop_per_s": {k: round(v, 2) for k, v in gflops.items()},
            "efficiency_built_over_bare": round(efficiency, 3),
            "target": {"efficiency_min": 0.7},
            "met": efficiency >= 0.7,
        },
        args.out,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
