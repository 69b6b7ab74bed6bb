"""Artifacts: latency of the exported SavedModel, ONNX and StableHLO as a ratio of the fast path.

Runs :func:`nnx_build.bench.bench_spec` (the code behind ``nnx-build bench``) on a few
models, from dispatch-bound to compute-bound: each is built once, exported to every
target in a temporary folder, reloaded in this process (StableHLO: ``jax.export``;
SavedModel: TensorFlow; ONNX: onnxruntime) and timed on the same inputs in interleaved
rounds. Ratios are medians of per-round ratios to the fast path (> 1: slower than JAX).
Each model is also exported without verification to measure each target's folder over
the weights' bytes (``folder_over_weights``: StableHLO as exported by default, and with
``--weights-as-args``; SavedModel; ONNX); ``--sizes-only`` measures just these and adds
them to the results file already written.

Usage: python benchmarks/artifacts.py [--rounds 15] [--models seed_mlp,cnn,large_mlp,gpt] [--sizes-only] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
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


def folder_sizes(spec: object) -> dict[str, object]:
    """Each target's folder size over the weights' bytes, exported without verification."""
    import nnx_build

    model = nnx_build.build(spec)
    weights = nnx_build.fast_forward(model).weight_bytes()
    ratios = {}
    with tempfile.TemporaryDirectory(prefix="nnx-build-sizes-") as tmp:
        nnx_build.export(model, Path(tmp) / "all", to="stablehlo,savedmodel,onnx", verify=False)
        nnx_build.export(model, Path(tmp) / "args", to="stablehlo", weights_as_args=True, verify=False)
        for name, folder in (("stablehlo", "all/stablehlo"), ("stablehlo_weights_as_args", "args/stablehlo"),
                             ("savedmodel", "all/savedmodel"), ("onnx", "all/onnx")):
            size = sum(f.stat().st_size for f in (Path(tmp) / folder).rglob("*") if f.is_file())
            ratios[name] = round(size / weights, 3)
    return {"weights_bytes": weights, "folder_over_weights": ratios}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--models", default="seed_mlp,cnn,large_mlp,gpt")
    parser.add_argument("--sizes-only", action="store_true", help="measure only the folder sizes, added to the results file")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    table = models()
    if args.sizes_only:
        path = args.out or ROOT / "benchmarks" / "results" / "artifacts.json"
        data = json.loads(path.read_text())
        for name in args.models.split(","):
            sizes = folder_sizes(table[name][0])
            data["summary"][name].update(sizes)
            print(name, sizes, file=sys.stderr)
        path.write_text(json.dumps(data, indent=2) + "\n")
        return 0

    from nnx_build.bench import bench_spec

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
            **folder_sizes(table[name][0]),
        }
        for name, r in results.items()
    }
    write_result("artifacts", {"rounds": args.rounds, "summary": summary, "models": results}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
