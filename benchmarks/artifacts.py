"""Artifacts: latency of the exported SavedModel, ONNX and StableHLO as a ratio of the fast path.

Runs :func:`nnx_build.bench.bench_spec` (the code behind ``nnx-build bench``) on a few
models, from dispatch-bound to compute-bound: each is built once, exported to every
target in a temporary folder, reloaded in this process (StableHLO: ``jax.export``;
SavedModel: TensorFlow; ONNX: onnxruntime) and timed on the same inputs in interleaved
rounds. Ratios are medians of per-round ratios to the fast path (> 1: slower than JAX).

Usage: python benchmarks/artifacts.py [--rounds 15] [--models seed_mlp,cnn,large_mlp,gpt] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _common  # noqa: F401
from _common import ROOT, write_result
from efficiency import SPEC as LARGE_MLP
from parity import GPT_SPEC


def models() -> dict[str, tuple[object, int]]:
    gpt = GPT_SPEC.replace("name: gpt\n", "name: gpt\ndims: {batch: 4, seq: 128}\n")
    return {
        "seed_mlp": (ROOT / "specs/seed/model.yaml", 8),
        "cnn": (ROOT / "specs/cnn.yaml", 8),
        "large_mlp": (LARGE_MLP.format(d=1024, hidden=4096), 256),
        "gpt": (gpt, 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--models", default="seed_mlp,cnn,large_mlp,gpt")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from nnx_build.bench import bench_spec

    table = models()
    results = {}
    for name in args.models.split(","):
        spec, batch = table[name]
        r = bench_spec(spec, batch=batch, rounds=args.rounds, max_seconds=120, min_sample_s=0.02)
        r.pop("machine")
        r["spec"] = str(Path(spec).relative_to(ROOT)) if isinstance(spec, Path) else f"inline ({name})"
        results[name] = r
        print(name, r["latency_ratio_to_fast_path"], r["errors"], file=sys.stderr)
    summary = {
        name: {
            "params": r["params"],
            "batch": r["batch"],
            "fast_path_ms": r["results"]["fast_path"]["latency"]["median_ms"],
            "latency_ratio_to_fast_path": r["latency_ratio_to_fast_path"],
            "errors": r["errors"],
        }
        for name, r in results.items()
    }
    write_result("artifacts", {"rounds": args.rounds, "summary": summary, "models": results}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
