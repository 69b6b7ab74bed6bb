"""Peak memory of ``build --weights`` on a model over 1 GB, as a multiple of the weights' bytes.

Writes (into a temporary folder) a spec of ``LAYERS`` scanned ``WIDTH x WIDTH`` Linear
layers and two float32 safetensors files of its weights: one in the model's own names
(``blk/kernel``, stacked), one in torch naming (``blk.{i}.weight`` ``[out, in]``, one
tensor per layer) that the spec's ``weights:`` mapping transposes and stacks. Each case
runs in a fresh process and reports its peak resident memory (``VmHWM``): after the
imports alone, for the build without weights (random initialisation), and for each
``build --weights``. Target: peak <= 1.3 x the weights' bytes.

Usage: python benchmarks/weights_memory.py [--out benchmarks/results/weights_memory.json] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401
import numpy as np
from _common import write_result

WIDTH, LAYERS = int(os.environ.get("WM_WIDTH", 4096)), int(os.environ.get("WM_LAYERS", 18))  # 18 x 4096 x 4096 float32 = 1.21 GB of kernels
TARGET = 1.3

SPEC = f"""\
format: 1
name: wide
inputs: {{x: [batch, {WIDTH}]}}
layers:
  - blk: {{type: Linear, in_features: {WIDTH}, out_features: {WIDTH}, repeat: {LAYERS}, scan: true}}
weights:
  map:
    blk.{{i}}.weight: {{to: "blk/{{i}}/kernel", transforms: [transpose]}}
    blk.{{i}}.bias: blk/{{i}}/bias
"""

CHILD = """
import json, sys, time
import jax, flax.nnx, safetensors
import nnx_build, nnx_build.pipeline, nnx_build.weights
from nnx_build.memory import peak_rss_mb
jax.block_until_ready(jax.numpy.zeros(1))
imports = peak_rss_mb()
t = time.perf_counter()
if sys.argv[2] != "-":
    model = nnx_build.build(sys.argv[1], weights=None if sys.argv[2] == "none" else sys.argv[2])
    jax.block_until_ready(jax.tree.leaves(flax.nnx.state(model)))
print(json.dumps({"peak_rss_mb": peak_rss_mb(), "imports_rss_mb": imports, "seconds": time.perf_counter() - t}))
"""


def _measure(spec: Path, weights: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(spec), weights], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--dir", type=Path, help="where to write the temporary files (default: the system's temp folder)")
    args = parser.parse_args()
    from safetensors.numpy import save_file

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        d = Path(tmp)
        spec = d / "wide.yaml"
        spec.write_text(SPEC)
        rng = np.random.default_rng(0)
        torch_named: dict[str, np.ndarray] = {}
        for i in range(LAYERS):
            torch_named[f"blk.{i}.weight"] = rng.standard_normal((WIDTH, WIDTH), dtype=np.float32)
            torch_named[f"blk.{i}.bias"] = rng.standard_normal(WIDTH, dtype=np.float32)
        nbytes = sum(v.nbytes for v in torch_named.values())
        save_file(torch_named, str(d / "torch.safetensors"))
        own = {
            "blk/kernel": np.stack([torch_named.pop(f"blk.{i}.weight").T for i in range(LAYERS)]),
            "blk/bias": np.stack([torch_named.pop(f"blk.{i}.bias") for i in range(LAYERS)]),
        }
        save_file(own, str(d / "own.safetensors"))
        del own, torch_named
        mb = nbytes / 2**20
        cases: dict[str, dict[str, float]] = {}
        for name, weights in (("imports_only", "-"), ("random_init", "none"), ("own_names", str(d / "own.safetensors")),
                              ("torch_names", str(d / "torch.safetensors"))):
            t = time.perf_counter()
            row = _measure(spec, weights)
            row["process_seconds"] = round(time.perf_counter() - t, 2)
            row["seconds"] = round(row["seconds"], 2)
            row["peak_over_weights"] = round(row["peak_rss_mb"] / mb, 3)
            cases[name] = row
    data = {
        "model": f"{LAYERS} scanned Linear {WIDTH}x{WIDTH}, float32",
        "weights_bytes": nbytes,
        "weights_mb": round(mb, 1),
        "target_peak_over_weights": TARGET,
        "cases": cases,
        "met": all(cases[c]["peak_over_weights"] <= TARGET for c in ("own_names", "torch_names")),
    }
    write_result("weights_memory", data, args.out)


if __name__ == "__main__":
    main()
