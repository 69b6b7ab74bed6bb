"""Peak memory of ``build --weights`` on a model over 1 GB, against the weights' bytes.

Writes a spec of ``LAYERS`` scanned ``WIDTH x WIDTH`` Linear layers and two safetensors
files of its weights: one in the model's own names (``blk/kernel``, stacked), one in
torch naming (``blk.{i}.weight`` ``[out, in]``, one tensor per layer) that the spec's
``weights:`` mapping transposes and stacks. Each build runs in a fresh process; the
report is its peak RSS, the RSS of the same build without weights (random init), and
the difference over the weights' bytes.

    python scripts/weights_memory.py [--out results.json] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

WIDTH, LAYERS = 4096, 18  # 18 x 4096 x 4096 float32 = 1.21 GB of kernels

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
import resource, sys, time
import nnx_build
t = time.perf_counter()
nnx_build.build(sys.argv[1], weights=sys.argv[2] if sys.argv[2] != "-" else None)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, time.perf_counter() - t)
"""


def _peak(spec: Path, weights: Path | None) -> tuple[int, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(spec), str(weights or "-")], check=True, capture_output=True, text=True)
    rss, seconds = out.stdout.split()
    return int(rss), float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--dir", type=Path)
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
        base, base_s = _peak(spec, None)
        rows = {"weights_bytes": nbytes, "random_init": {"peak_rss": base, "seconds": base_s}}
        for name in ("own", "torch"):
            rss, seconds = _peak(spec, d / f"{name}.safetensors")
            rows[f"{name}_names"] = {
                "peak_rss": rss,
                "seconds": seconds,
                "peak_over_weights": round(rss / nbytes, 3),
                "extra_over_random_init": round((rss - base) / nbytes, 3),
            }
    text = json.dumps(rows, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
