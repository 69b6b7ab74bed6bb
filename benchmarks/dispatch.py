"""Per-call dispatch cost: the fast path against raw ``jax.jit`` and ``nnx.jit``.

The model is the seed's small MLP (``specs/seed/model.yaml``: Linear 2->64, BatchNorm,
Dropout, relu, Linear 64->3; 643 parameters) at batch 8, so a call is nearly all
dispatch. Timed, interleaved in the same rounds (medians of per-call time):

* ``raw_jit``: ``jax.jit`` of a hand-written pure function of a dict holding the same 8
  arrays (the floor: what JAX itself costs per call);
* ``fast_path``: ``fn(weights, x)`` from ``fn, weights = nnx_build.fast_forward(model)``;
* ``fast_path_call``: ``ff(x)`` (the ``FastForward`` object's ``__call__``);
* ``nnx_jit``: ``nnx.jit`` on the module (splits and merges the graph every call).

Each call waits for its result (``latency``); the ``pipelined`` section issues calls
back to back and waits once (JAX's asynchronous dispatch). Targets: fast path at most
1.1x raw ``jax.jit``; ``nnx.jit`` at least 10x slower than the fast path.

Usage: python benchmarks/dispatch.py [--rounds 30] [--batch 8] [--out FILE]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _common  # noqa: F401  (sets JAX_PLATFORMS, sys.path)
from _common import ROOT, write_result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    import nnx_build
    from nnx_build.bench import interleaved, paired_ratio

    model = nnx_build.build(ROOT / "specs/seed/model.yaml")
    ff = nnx_build.fast_forward(model)
    fn, weights = ff
    x = jax.device_put(np.random.default_rng(0).standard_normal((args.batch, 2)).astype(np.float32))

    # the same arrays, a hand-written function: Linear, BatchNorm (running stats), relu, Linear
    params = {k: jnp.asarray(v) for k, v in weights.items()}
    eps = float(model.bn.epsilon)

    def pure(p, x):
        h = x @ p["linear/kernel"] + p["linear/bias"]
        h = (h - p["bn/mean"]) * jax.lax.rsqrt(p["bn/var"] + eps) * p["bn/scale"] + p["bn/bias"]
        h = jax.nn.relu(h)
        return h @ p["linear_out/kernel"] + p["linear_out/bias"]

    raw = jax.jit(pure)
    clone = nnx.merge(*nnx.split(model))
    clone.eval()

    @nnx.jit
    def nnx_jitted(m, x):
        return m(x)

    want = np.asarray(fn(weights, x))
    for f in (lambda: raw(params, x), lambda: nnx_jitted(clone, x), lambda: ff(x)):
        np.testing.assert_allclose(np.asarray(f()), want, rtol=1e-5, atol=1e-5)

    cases = {
        "raw_jit": lambda: raw(params, x),
        "fast_path": lambda: fn(weights, x),
        "fast_path_call": lambda: ff(x),
        "nnx_jit": lambda: nnx_jitted(clone, x),
    }
    lat = interleaved(cases, rounds=args.rounds, warmup=5, min_sample_s=0.01)
    pip = interleaved(cases, rounds=args.rounds, warmup=0, min_sample_s=0.01, pipelined=True)

    def us(t):
        return {k: round(v.median * 1e6, 2) for k, v in t.items()}

    ratios = {
        "fast_path_over_raw_jit": round(paired_ratio(lat, "fast_path", "raw_jit"), 3),
        "fast_path_call_over_raw_jit": round(paired_ratio(lat, "fast_path_call", "raw_jit"), 3),
        "nnx_jit_over_fast_path": round(paired_ratio(lat, "nnx_jit", "fast_path"), 2),
    }
    pip_ratios = {
        "fast_path_over_raw_jit": round(paired_ratio(pip, "fast_path", "raw_jit"), 3),
        "fast_path_call_over_raw_jit": round(paired_ratio(pip, "fast_path_call", "raw_jit"), 3),
        "nnx_jit_over_fast_path": round(paired_ratio(pip, "nnx_jit", "fast_path"), 2),
    }
    write_result(
        "dispatch",
        {
            "spec": "specs/seed/model.yaml",
            "batch": args.batch,
            "weights": len(weights),
            "rounds": args.rounds,
            "latency_us": us(lat),
            "latency_us_p10_p90": {k: [round(v.p10 * 1e6, 2), round(v.p90 * 1e6, 2)] for k, v in lat.items()},
            "ratios": ratios,
            "pipelined_us": us(pip),
            "pipelined_ratios": pip_ratios,
            "targets": {"fast_path_over_raw_jit_max": 1.1, "nnx_jit_over_fast_path_min": 10.0},
            "met": {
                "fast_path_over_raw_jit": ratios["fast_path_over_raw_jit"] <= 1.1,
                "nnx_jit_over_fast_path": ratios["nnx_jit_over_fast_path"] >= 10.0,
            },
        },
        args.out,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
