"""Exports a model with more than 2 GB of float32 weights to a TF SavedModel.

The SavedModel keeps the weights in tf.Variables (``variables/``), not as graph
constants, so the 2 GB protobuf limit does not apply. Writes one JSON object (times,
peak RSS of this process (and over the weights' bytes) and of the verification child, sizes) to stdout or ``--out``.

Usage:
  .venv/bin/python benchmarks/export_large_savedmodel.py [--dim 16384] [--hidden 12288]
      [--layers 3] [--verify] [--keep DIR] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

SPEC = """\
format: 1
name: large_mlp
seed: 0
inputs:
  x: {{shape: [batch, {dim}], dtype: float32}}
layers:
{layers}
"""


def spec_text(dim: int, hidden: int, layers: int) -> str:
    lines = []
    d_in = dim
    for i in range(layers):
        d_out = hidden if i % 2 == 0 else dim
        lines.append(f"  - linear{i}: {{type: Linear, in_features: {d_in}, out_features: {d_out}}}")
        if i < layers - 1:
            lines.append("  - relu")
        d_in = d_out
    return SPEC.format(dim=dim, layers="\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=16384)
    parser.add_argument("--hidden", type=int, default=12288)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--verify", action="store_true", help="also reload in a fresh process and compare with JAX")
    parser.add_argument("--keep", type=Path, default=None, help="keep the export here instead of a temporary folder")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here instead of stdout")
    args = parser.parse_args()

    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t0 = time.perf_counter()
    import jax

    from nnx_build.builder import check
    from nnx_build.exporters import export
    from nnx_build.memory import peak_rss_mb

    text = spec_text(args.dim, args.hidden, args.layers)
    report = check(text)
    tmp = Path(tempfile.mkdtemp(prefix="nnx-build-large-"))
    out = args.keep or tmp / "export"
    t_import = time.perf_counter() - t0
    try:
        t1 = time.perf_counter()
        result = export(text, out, to="savedmodel", verify=args.verify, force=args.keep is not None)
        total = time.perf_counter() - t1
        files = result.files
        variables = sum(f["size"] for f in files if "/variables/" in f["path"])
        pb = sum(f["size"] for f in files if f["path"].endswith("saved_model.pb"))
        data = {
            "benchmark": "export_large_savedmodel",
            "params": report.total_params,
            "weight_bytes": report.total_params * 4,
            "weight_gb": round(report.total_params * 4 / 1e9, 3),
            "layers": args.layers,
            "dim": args.dim,
            "hidden": args.hidden,
            "seconds_total": round(total, 2),
            "seconds_by_stage": result.seconds,
            "seconds_imports": round(t_import, 2),
            "peak_rss_mb": peak_rss_mb(),
            "peak_over_weights": round(peak_rss_mb() * 2**20 / (report.total_params * 4), 3),
            "verify_child_peak_rss_mb": result.verification.get("child_peak_rss_mb"),
            "saved_model_pb_bytes": pb,
            "variables_bytes": variables,
            "files": len(files),
            "verification": result.verification.get("status"),
            "max_abs_err": max((r["max_abs_err"] for r in result.verification.get("results", [])), default=None),
            "versions": {k: result.manifest["versions"].get(k) for k in ("jax", "flax", "tensorflow")},
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "jax_backend": jax.default_backend()},
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text_out = json.dumps(data, indent=2)
    if args.out:
        args.out.write_text(text_out + "\n")
    else:
        print(text_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
