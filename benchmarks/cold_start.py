"""Cold start: wall time of ``nnx-build SPEC`` (build + forward on zeros) in fresh processes.

Each round runs, one after the other, in fresh processes:

* ``before_first`` / ``before_second``: the code of ``--baseline REF`` (a git revision),
  when given, on an empty compilation cache folder of its own and then again on the
  folder it filled (a revision without the cache runs the same twice);
* ``no_cache``: this code with ``NNX_BUILD_COMPILE_CACHE=0`` (nothing read from disk);
* ``first``: this code with the cache on in a new, empty folder;
* ``second``: this code again, reading the folder ``first`` just filled.

Wall time and peak RSS of each process; the ratios (``first`` to ``before_first``,
``second`` to ``before_second``, ``second`` to ``first``) are medians of per-round
ratios, so a machine shared with other work still gives comparable numbers within one run.

Usage: python benchmarks/cold_start.py [--spec specs/zoo/resnet50.yaml] [--rounds 3] [--baseline REV] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (sets JAX_PLATFORMS, sys.path)
from _common import ROOT, baseline_package, compile_bytecode, run_measured, write_result

VARIANTS = ("before_first", "before_second", "no_cache", "first", "second")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_") and k != "NNX_BUILD_COMPILE_CACHE"}
    return {**env, "JAX_PLATFORMS": "cpu", **extra}


def _run(spec: str, env: dict[str, str], cwd: Path = ROOT) -> dict[str, float]:
    """One ``nnx-build SPEC`` process (the package found from ``cwd`` first): wall seconds and peak RSS (MB)."""
    cmd = [sys.executable, "-m", "nnx_build.cli", str(ROOT / spec)]
    return run_measured(cmd, env, cwd)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="specs/zoo/resnet50.yaml")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", help="git revision to compare with (its nnx_build package, run from a copy)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    compile_bytecode(ROOT / "nnx_build")  # the baseline's copy is compiled the same way

    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="nnx-build-cold-start-") as tmp:
        home = {"XDG_CACHE_HOME": str(Path(tmp) / "home")}  # never the user's own cache
        old = baseline_package(args.baseline, Path(tmp) / "baseline", _env(**home)) if args.baseline else None
        for r in range(args.rounds):
            cache, old_cache = Path(tmp) / f"cache-{r}", Path(tmp) / f"baseline-cache-{r}"
            if old is not None:
                runs["before_first"].append(_run(args.spec, _env(**home, NNX_BUILD_COMPILE_CACHE=str(old_cache)), cwd=old))
                runs["before_second"].append(_run(args.spec, _env(**home, NNX_BUILD_COMPILE_CACHE=str(old_cache)), cwd=old))
            runs["no_cache"].append(_run(args.spec, _env(**home, NNX_BUILD_COMPILE_CACHE="0")))
            runs["first"].append(_run(args.spec, _env(**home, NNX_BUILD_COMPILE_CACHE=str(cache))))
            runs["second"].append(_run(args.spec, _env(**home, NNX_BUILD_COMPILE_CACHE=str(cache))))
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{v} {runs[v][-1]['seconds']:.1f} s" for v in VARIANTS if runs[v]), file=sys.stderr)
        cache_mb = sum(f.stat().st_size for f in (Path(tmp) / "cache-0").rglob("*") if f.is_file()) / 2**20

    def median(variant: str, key: str) -> float | None:
        return round(statistics.median(x[key] for x in runs[variant]), 3) if runs[variant] else None

    def ratio(a: str, b: str) -> float | None:
        if not runs[a] or not runs[b]:
            return None
        return round(statistics.median(x["seconds"] / y["seconds"] for x, y in zip(runs[a], runs[b], strict=True)), 3)

    data: dict[str, Any] = {
        "spec": args.spec,
        "rounds": args.rounds,
        "baseline": args.baseline,
        "command": f"nnx-build {args.spec}",
        "median_seconds": {v: median(v, "seconds") for v in VARIANTS},
        "median_peak_rss_mb": {v: median(v, "peak_rss_mb") for v in VARIANTS},
        "ratio_to_before": {"no_cache": ratio("no_cache", "before_first"), "first": ratio("first", "before_first"), "second": ratio("second", "before_second")},
        "second_to_first": ratio("second", "first"),
        "cache_folder_mb": round(cache_mb, 2),
        "runs": runs,
    }
    write_result("cold_start", data, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
