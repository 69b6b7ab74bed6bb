"""Wall time and peak RSS of `nnx-build check` on large specs, each in a fresh process.

Usage: python benchmarks/check_scale.py [SPEC ...] [--out results/check_scale.json]
Writes one JSON object: per spec, seconds, peak RSS in MB, and the parameter count.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(spec: Path) -> dict[str, object]:
    code = (
        "import resource, sys, json; from nnx_build.cli import main; rc = main(['check', sys.argv[1], '--json']);"
        "print(json.dumps({'maxrss_kb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss})); sys.exit(rc)"
    )
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, str(spec)], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    lines = proc.stdout.strip().splitlines()
    report, rss = json.loads(lines[-2]), json.loads(lines[-1])
    return {
        "spec": str(spec.relative_to(ROOT)) if spec.is_relative_to(ROOT) else str(spec),
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(rss["maxrss_kb"] / 1024, 1),
        "params": report["params"],
        "total_params": report["total_params"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("specs", nargs="*", type=Path, default=[ROOT / "specs/zoo/gpt2_xl.yaml"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = {
        "benchmark": "check_scale",
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "targets": {"seconds": 5.0, "peak_rss_mb": 1024},
        "results": [measure(s.resolve()) for s in args.specs],
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
