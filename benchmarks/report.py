"""Prints the results table of benchmarks/README.md from benchmarks/results/*.json.

Usage: python benchmarks/report.py   (after `make bench`)
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def load(name: str) -> dict | None:
    p = RESULTS / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def mark(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "**not met**")


def rows() -> list[tuple[str, str, str, str]]:
    out: list[tuple[str, str, str, str]] = []
    d = load("parity")
    if d:
        for name, m in d["models"].items():
            hlo = m["hlo"]
            same = "identical" if hlo["identical"] else (
                f"same {hlo['lines'][0]} lines but {hlo['differing_lines']} differ"
                + (" (same instructions, another order)" if hlo.get("same_instructions_in_another_order") else "")
            )
            out.append((
                f"parity `{name}`: built / hand-written NNX, both `jax.jit`",
                "≤ 1.02",
                f"{m['ratio_built_over_hand']:.3f} ({m['ms']['built']:.1f} vs {m['ms']['hand']:.1f} ms); HLO {same}",
                mark(m["met"]),
            ))
    d = load("dispatch")
    if d:
        r, us = d["ratios"], d["latency_us"]
        out.append((
            "dispatch: fast path / raw `jax.jit` (per call)",
            "≤ 1.1",
            f"{r['fast_path_over_raw_jit']:.3f} ({us['fast_path']:.1f} vs {us['raw_jit']:.1f} µs)",
            mark(d["met"]["fast_path_over_raw_jit"]),
        ))
        out.append((
            "dispatch: `nnx.jit` / fast path (per call)",
            "≥ 10",
            f"{r['nnx_jit_over_fast_path']:.1f} ({us['nnx_jit']:.0f} vs {us['fast_path']:.1f} µs)",
            mark(d["met"]["nnx_jit_over_fast_path"]),
        ))
    d = load("depth")
    if d:
        res, ratio = d["results"], d["ratio_48_over_4"]
        out.append((
            "depth: export + compile, 48 / 4 scanned blocks",
            "≤ 1.3",
            f"{ratio['scan']:.2f} ({res['scan_48']['total_s']:.2f} vs {res['scan_4']['total_s']:.2f} s)"
            + (
                f"; unrolled {ratio['unrolled']:.1f} "
                f"({res['unrolled_48']['total_s']:.2f} vs {res['unrolled_4']['total_s']:.2f} s)"
                if "unrolled" in ratio
                else ""
            ),
            mark(d["met"]),
        ))
    d = load("check_scale")
    if d:
        for r in d["results"]:
            out.append((
                f"scale: `check` {Path(r['spec']).stem} ({r['total_params'] / 1e9:.2f} B params)",
                "< 5 s, < 1 GB",
                f"{r['seconds']:.2f} s process ({r.get('check_seconds', float('nan')):.2f} s check), {r['peak_rss_mb']:.0f} MB",
                mark(r.get("met")),
            ))
    d = load("scale")
    if d:
        st = d["stages"]
        for stage in ("build", "export_stablehlo", "export_savedmodel"):
            if stage not in st:
                continue
            s = st[stage]
            if "error" in s:
                out.append((f"scale: {stage} 1.1 B", "recorded", f"failed: {s['error']}", "—"))
                continue
            extra = f"(build {s['build_s']:.0f} s, first forward {s['first_forward_s']:.1f} s)" if stage == "build" else \
                "(" + ", ".join(f"{k} {v:.0f} s" for k, v in s["stages_s"].items() if v >= 0.5) + ")"
            seconds = f"{s['seconds']:.0f} s {extra}, peak RSS {s['peak_rss_mb'] / 1024:.1f} GB"
            out.append((f"scale: {stage.replace('_', ' ')} of 1.1 B params", "recorded", seconds, "recorded"))
    d = load("weights_memory")
    if d:
        c = d["cases"]
        out.append((
            f"weights: peak RSS of `build --weights`, {d['weights_bytes'] / 1e9:.2f} GB float32 safetensors / weights' bytes",
            f"≤ {d['target_peak_over_weights']}",
            f"{c['own_names']['peak_over_weights']:.3f} in the model's names, {c['torch_names']['peak_over_weights']:.3f} in torch "
            f"names through a mapping (imports alone {c['imports_only']['peak_over_weights']:.2f}; "
            f"the build without weights, random init: {c['random_init']['peak_over_weights']:.2f})",
            mark(d["met"]),
        ))
    d = load("efficiency")
    if d:
        g = d["gflop_per_s"]
        out.append((
            "efficiency: large MLP FLOP/s / bare matmuls",
            "≥ 0.70",
            f"{d['efficiency_built_over_bare']:.2f} ({g['built']:.1f} vs {g['bare_matmul']:.1f} GFLOP/s)",
            mark(d["met"]),
        ))
    d = load("artifacts")
    if d:
        for name, m in d["summary"].items():
            r = m["latency_ratio_to_fast_path"]
            parts = [f"{t} {r[t]:.2f}" for t in ("savedmodel", "onnx", "stablehlo", "nnx_jit") if t in r]
            parts += [f"{t}: not run" for t in m["errors"]]
            what = f"artifacts `{name}` (batch {m['batch']}, fast path {m['fast_path_ms']:.3g} ms): latency / fast path"
            out.append((what, "reported", ", ".join(parts), "recorded"))
    return out


def main() -> int:
    print("| benchmark | target | result | |")
    print("|---|---|---|---|")
    for row in rows():
        print("| " + " | ".join(row) + " |")
    m = (load("dispatch") or load("parity") or {}).get("machine")
    if m:
        print(f"\nMachine: {m['cpu_model']}, {m['cpus']} CPUs, {m.get('mem_gb', '?')} GB, {m['platform']}; "
              + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + f"; load average at start {m.get('load_avg_1m', '?')}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
