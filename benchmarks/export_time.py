"""Export time: ``nnx-build export SPEC`` to every target, verified, stage by stage, against a baseline.

Each round runs, for each spec, in fresh processes and in alternating order:

* ``before``: the code of ``--baseline REV`` (a git revision), when given;
* ``after``: this code.

Both start from an empty compilation cache of their own (the first export of a model), so
neither reads what the other compiled. Recorded per run: wall time and peak RSS of the
command, the manifest's seconds per stage (build, each target's conversion, the wait for
verification) and each verification process's wall time. Ratios are medians of per-round
ratios (after / before). Run it under ``flock`` on a shared machine: an export of ViT-B/16
takes several GB.

Usage: python benchmarks/export_time.py [--specs specs/zoo/vit_b16.yaml,specs/zoo/gpt2.yaml] [--rounds 1] [--baseline REV] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (sets JAX_PLATFORMS, sys.path)
from _common import ROOT, baseline_package, compile_bytecode, run_measured, write_result

SPECS = ("specs/zoo/vit_b16.yaml", "specs/zoo/gpt2.yaml")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_") and k != "NNX_BUILD_COMPILE_CACHE"}
    return {**env, "JAX_PLATFORMS": "cpu", **extra}


def _run(spec: str, out: Path, env: dict[str, str], cwd: Path = ROOT) -> dict[str, Any]:
    """One ``nnx-build export SPEC`` process (the package found from ``cwd`` first): wall seconds, peak RSS, the manifest's stages."""
    cmd = [sys.executable, "-m", "nnx_build.cli", "export", str(ROOT / spec), "--out", str(out), "--force"]
    measured = run_measured(cmd, env, cwd)
    manifest = json.loads((out / "manifest.json").read_text())
    ver = manifest["verification"]
    processes = {t: p["seconds"] for t, p in ver.get("processes", {}).items()}
    return {
        **measured,
        "stages": manifest.get("seconds", {}),
        # before: one process for every target (its wall time is the verify stage's)
        "verify_processes": processes or {"all": ver.get("seconds")},
        "verification": ver["status"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", default=",".join(SPECS))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--baseline", help="git revision to compare with (its nnx_build package, run from a copy)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    compile_bytecode(ROOT / "nnx_build")  # the baseline's copy is compiled the same way
    specs = [s.strip() for s in args.specs.split(",") if s.strip()]
    variants = ("before", "after") if args.baseline else ("after",)

    runs: dict[str, dict[str, list[dict[str, Any]]]] = {s: {v: [] for v in variants} for s in specs}
    with tempfile.TemporaryDirectory(prefix="nnx-build-export-time-") as tmp:
        home = {"XDG_CACHE_HOME": str(Path(tmp) / "home")}  # never the user's own cache
        old = baseline_package(args.baseline, Path(tmp) / "baseline", _env(**home)) if args.baseline else None
        n = 0
        for r in range(args.rounds):
            for spec in specs:
                order = variants if (r + specs.index(spec)) % 2 == 0 else variants[::-1]
                for v in order:
                    n += 1
                    env = _env(**home, NNX_BUILD_COMPILE_CACHE=str(Path(tmp) / f"cache-{n}"))
                    run = _run(spec, Path(tmp) / "export", env, cwd=old if v == "before" and old is not None else ROOT)
                    runs[spec][v].append(run)
                    print(f"round {r + 1}/{args.rounds} {spec} {v}: {run['seconds']:.1f} s", file=sys.stderr)

    def median(xs: list[float]) -> float:
        return round(statistics.median(xs), 3)

    models: dict[str, Any] = {}
    for spec in specs:
        by = runs[spec]
        model: dict[str, Any] = {
            "median_seconds": {v: median([x["seconds"] for x in by[v]]) for v in variants},
            "median_peak_rss_mb": {v: median([x["peak_rss_mb"] for x in by[v]]) for v in variants},
            "median_stages": {v: {k: median([x["stages"].get(k, 0.0) for x in by[v]]) for k in by[v][0]["stages"]} for v in variants},
            "verification": {v: sorted({x["verification"] for x in by[v]}) for v in variants},
        }
        if args.baseline:
            model["ratio"] = median([a["seconds"] / b["seconds"] for a, b in zip(by["after"], by["before"], strict=True)])
        models[spec] = model
    data: dict[str, Any] = {
        "rounds": args.rounds,
        "baseline": args.baseline,
        "command": "nnx-build export SPEC (stablehlo, savedmodel, onnx; verified), empty compilation cache",
        "target": "after / before ≤ 0.5",
        "models": models,
        "runs": runs,
    }
    write_result("export_time", data, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
