"""Wall time and peak RSS of `nnx-build check` on large specs, each in a fresh process.

Usage: python benchmarks/check_scale.py [SPEC ...] [--out results/check_scale.json]
Writes one JSON object: per spec, seconds (the whole process, interpreter start and
imports included, and the check alone), peak RSS in MB, and the parameter count.
Default specs: GPT-2 XL (1.56 B) and LLaMA-7B (6.74 B); target: under 5 s and 1 GB.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(spec: Path) -> dict[str, object]:
    code = (
        "import sys, json, time; from nnx_build.cli import main; from nnx_build.memory import peak_rss_mb;"
        "t0 = time.perf_counter(); rc = main(['check', sys.argv[1], '--json']); t = time.perf_counter() - t0;"
        "print(json.dumps({'peak_rss_mb': peak_rss_mb(), 'check_s': t})); sys.exit(rc)"
    )
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, str(spec)], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    lines = proc.stdout.strip().splitlines()
    report, rss = json.loads(lines[-2]), json.loads(lines[-1])
    return {
        "spec": str(spec.relative_to(ROOT)) if spec.is_relative_to(ROOT) else str(spec),
        "seconds": round(seconds, 3),
        "check_seconds": round(rss["check_s"], 3),
        "peak_rss_mb": rss["peak_rss_mb"],
        "params": report["params"],
        "total_params": report["total_params"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("specs", nargs="*", type=Path, default=[ROOT / "specs/zoo/gpt2_xl.yaml", ROOT / "specs/zoo/llama_7b.yaml"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = [measure(s.resolve()) for s in args.specs]
    for r in results:
        r["met"] = r["seconds"] < 5.0 and r["peak_rss_mb"] < 1024
    result = {
        "benchmark": "check_scale",
        "machine": {"date": __import__("time").strftime("%Y-%m-%dT%H:%M:%SZ", __import__("time").gmtime()),
                    "platform": platform.platform(), "python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "targets": {"seconds": 5.0, "peak_rss_mb": 1024},
        "load_avg_1m": round(__import__("os").getloadavg()[0], 2),
        "results": results,
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
