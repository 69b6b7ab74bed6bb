"""Scale: build and export a 1.1-billion-parameter model; time and peak RSS of each stage.

The model is ``specs/zoo/llama_7b.yaml`` at TinyLlama-1.1B's size (d_model 2048, 22
blocks, 32 heads with 4 kv heads, SwiGLU 5632, vocabulary 32000: 1,100,048,384
parameters, 4.4 GB of float32). Each stage runs in a fresh process (peak RSS is per
process: ``VmHWM``):

* ``check``: the abstract check (no weight allocated);
* ``build``: ``nnx_build.build`` until every weight is computed (initializers are
  dispatched asynchronously: ``build_dispatch_s`` is when ``build`` returned), then the
  first fast-path forward at 1 x 8 (compile and run);
* ``export_stablehlo``: ``nnx_build.export(..., to="stablehlo", weights_as_args=True)``
  (the large-model layout: ``@main(weights..., tokens)`` and ``weights.npz`` beside),
  build included, no verification;
* ``export_savedmodel`` (``--savedmodel``): TF SavedModel, weights as ``tf.Variable``s.

Usage: python benchmarks/scale.py [--savedmodel] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401
from _common import ROOT, write_result

LLAMA_7B_ARGS = "args: {vocab: 32000, d_model: 4096, heads: 32, kv_heads: 32, hidden: 11008, layers: 32, eps: 1.0e-5}"
TINYLLAMA_ARGS = "args: {vocab: 32000, d_model: 2048, heads: 32, kv_heads: 4, hidden: 5632, layers: 22, eps: 1.0e-5}"

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import nnx_build
stage, spec, out = sys.argv[1], sys.argv[2], sys.argv[3]
t_import = time.perf_counter() - t0
info = {}
t1 = time.perf_counter()
if stage == "check":
    info["params"] = nnx_build.check(spec).total_params
elif stage == "build":
    import jax
    from flax import nnx
    model = nnx_build.build(spec)
    info["build_dispatch_s"] = time.perf_counter() - t1
    jax.block_until_ready(nnx.state(model))  # initializers run asynchronously: wait for the weights
    info["build_s"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    ff = nnx_build.fast_forward(model)
    y = ff(np.zeros((1, 8), np.int32))
    y.block_until_ready()
    info["first_forward_s"] = time.perf_counter() - t2
    info["weight_bytes"] = ff.weight_bytes()
else:
    target = stage.split("_", 1)[1]
    result = nnx_build.export(spec, out, to=target, verify=False, force=True, weights_as_args=target == "stablehlo")
    info["stages_s"] = result.seconds
    info["files_bytes"] = sum(f["size"] for f in result.files)
info["seconds"] = time.perf_counter() - t1
info["import_s"] = t_import
from nnx_build.memory import peak_rss_mb
info["peak_rss_mb"] = peak_rss_mb()
print(json.dumps(info))
"""


def run_stage(stage: str, spec: Path, out: Path) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, stage, str(spec), str(out)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail), "process_s": round(wall, 2)}
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    rounded = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in info.items()}
    return {**rounded, "process_s": round(wall, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--savedmodel", action="store_true", help="also export a SavedModel (needs about 3x the weights in RAM)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    text = (ROOT / "specs/zoo/llama_7b.yaml").read_text()
    assert LLAMA_7B_ARGS in text
    tmp = Path(tempfile.mkdtemp(prefix="nnx-build-scale-"))
    try:
        spec = tmp / "tinyllama_1b.yaml"
        spec.write_text(text.replace(LLAMA_7B_ARGS, TINYLLAMA_ARGS).replace("name: llama_7b", "name: tinyllama_1b"))
        stages = ["check", "build", "export_stablehlo"] + (["export_savedmodel"] if args.savedmodel else [])
        results = {}
        for stage in stages:
            results[stage] = run_stage(stage, spec, tmp / stage)
            shutil.rmtree(tmp / stage, ignore_errors=True)
            print(stage, results[stage], file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    params = results["check"].get("params")
    write_result(
        "scale",
        {
            "model": "specs/zoo/llama_7b.yaml at TinyLlama-1.1B size: " + TINYLLAMA_ARGS,
            "params": params,
            "weight_gb": round(params * 4 / 1e9, 2) if params else None,
            "stages": results,
        },
        args.out,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
