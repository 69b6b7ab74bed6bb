"""Prints the results table of benchmarks/README.md from benchmarks/results/*.json.

Usage: python benchmarks/report.py            (after `make bench`) prints the table
       python benchmarks/report.py --readme   writes it into benchmarks/README.md, between
                                              the BEGIN/END report.py markers

Every figure comes from a results file; the "run" column is the date the script wrote it
("undated": written before the scripts recorded the date).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"
BEGIN = "<!-- BEGIN report.py: generated from benchmarks/results/*.json, do not edit by hand -->"
END = "<!-- END report.py -->"
NAMES = ("parity", "dispatch", "depth", "check_scale", "scale", "weights_memory", "efficiency", "artifacts", "cold_start", "peers", "export_time")


def load(name: str) -> dict[str, Any] | None:
    p = RESULTS / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def mark(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "**not met**")


def when(d: dict[str, Any]) -> str:
    date = d.get("machine", {}).get("date")
    return date[:10] if date else "undated"


def rows() -> list[tuple[str, str, str, str, str]]:
    """(benchmark, target, result, verdict, run date) for every figure of every results file."""
    out: list[tuple[str, str, str, str, str]] = []

    def add(d: dict[str, Any], row: tuple[str, str, str, str]) -> None:
        out.append((*row, when(d)))
    d = load("parity")
    if d:
        for name, m in d["models"].items():
            hlo = m["hlo"]
            same = f"identical ({hlo['instructions']} instructions)" if hlo["identical"] else (
                f"same {hlo['lines'][0]} lines"
                + (" and instructions in another order" if hlo.get("same_instructions_in_another_order") else "")
                + f", {hlo['differing_lines']} lines differ"
            )
            shape = "×".join(str(n) for n in m["input"]["shape"])
            add(d, (
                f"parity `{name}` ({m['params']:,} params, input {shape}): built / hand-written NNX, both `jax.jit`",
                "≤ 1.02",
                f"{m['ratio_built_over_hand']:.3f} ({m['ms']['built']:.1f} vs {m['ms']['hand']:.1f} ms); optimised HLO {same}",
                mark(m["met"]),
            ))
    d = load("dispatch")
    if d:
        r, us = d["ratios"], d["latency_us"]
        pr, pus = d.get("pipelined_ratios"), d.get("pipelined_us")
        add(d, (
            f"dispatch: fast path / raw `jax.jit` (per call, each result awaited; batch {d['batch']})",
            "≤ 1.1",
            f"{r['fast_path_over_raw_jit']:.3f} ({us['fast_path']:.1f} vs {us['raw_jit']:.1f} µs)"
            + (f"; calls pipelined: {pr['fast_path_over_raw_jit']:.3f} ({pus['fast_path']:.1f} vs {pus['raw_jit']:.1f} µs)"
               if pr and pus else ""),
            mark(d["met"]["fast_path_over_raw_jit"]),
        ))
        add(d, (
            "dispatch: `nnx.jit` on the module / fast path (per call)",
            "≥ 10",
            f"{r['nnx_jit_over_fast_path']:.1f} ({us['nnx_jit']:.0f} vs {us['fast_path']:.1f} µs)"
            + (f"; pipelined: {pr['nnx_jit_over_fast_path']:.1f} ({pus['nnx_jit']:.0f} vs {pus['fast_path']:.1f} µs)"
               if pr and pus else ""),
            mark(d["met"]["nnx_jit_over_fast_path"]),
        ))
    d = load("depth")
    if d:
        res, ratio = d["results"], d["ratio_48_over_4"]
        add(d, (
            "depth: export + compile, 48 / 4 scanned blocks",
            "≤ 1.3",
            f"{ratio['scan']:.2f} ({res['scan_48']['total_s']:.2f} vs {res['scan_4']['total_s']:.2f} s)"
            + (
                f"; unrolled {ratio['unrolled']:.1f} "
                f"({res['unrolled_48']['total_s']:.2f} vs {res['unrolled_4']['total_s']:.2f} s)"
                if "unrolled" in ratio
                else ""
            )
            + (
                f"; StableHLO at 48 blocks {res['scan_48']['mlir_chars'] / 1e3:.0f} K characters scanned vs "
                f"{res['unrolled_48']['mlir_chars'] / 1e6:.2f} M unrolled"
                if "unrolled_48" in res
                else ""
            ),
            mark(d["met"]),
        ))
    d = load("check_scale")
    if d:
        for r in d["results"]:
            add(d, (
                f"scale: `check` of `{r['spec']}` ({r['total_params']:,} params)",
                "< 5 s, < 1 GB",
                f"{r['seconds']:.2f} s process ({r.get('check_seconds', float('nan')):.2f} s check), {r['peak_rss_mb']:.0f} MB",
                mark(r.get("met")),
            ))
    d = load("scale")
    if d:
        out += [(*row, when(d)) for row in scale_rows(d)]
    d = load("weights_memory")
    if d:
        c = d["cases"]
        add(d, (
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
        widths = "↔".join(str(n) for n in d["shapes"][0])
        add(d, (
            f"efficiency: MLP ({len(d['shapes'])} Linear {widths}, batch {d['batch']}) matmul FLOP/s / bare matmuls",
            "≥ 0.70",
            f"{d['efficiency_built_over_bare']:.2f} ({g['built']:.1f} vs {g['bare_matmul']:.1f} GFLOP/s"
            + (f"; one bare matmul alone: {g['single_matmul']:.1f}" if "single_matmul" in g else "") + ")",
            mark(d["met"]),
        ))
    d = load("artifacts")
    if d:
        for name, m in d["summary"].items():
            r = m["latency_ratio_to_fast_path"]
            parts = [f"{t} {r[t]:.2f}" for t in ("savedmodel", "onnx", "stablehlo", "nnx_jit") if t in r]
            parts += [f"{t}: not run" for t in m["errors"]]
            what = (f"artifacts `{name}` ({m['params']:,} params, batch {m['batch']}, fast path {m['fast_path_ms']:.3g} ms): "
                    "latency / fast path")
            result = ", ".join(parts)
            sizes = m.get("folder_over_weights")
            if sizes:
                what += f"; folder / weights ({m['weights_bytes'] / 2**20:.3g} MiB of weights)"
                result += "; folder / weights: " + ", ".join(f"{t} {r:.2f}" for t, r in sizes.items())
            add(d, (what, "reported", result, "recorded"))
    d = load("cold_start")
    if d:
        s, r = d["median_seconds"], d["ratio_to_before"]
        add(d, (
            f"cold start: `{d['command']}` wall time, empty / filled compilation cache (medians of {d['rounds']} rounds)",
            "recorded",
            f"{s['first']:.1f} / {s['second']:.1f} s; filled / empty {d['second_to_first']:.2f}"
            + (f"; before ({d['baseline']}): {s['before_first']:.1f} / {s['before_second']:.1f} s, ratios {r['first']:.2f} / {r['second']:.2f}"
               if s.get("before_first") else "")
            + f"; peak RSS {d['median_peak_rss_mb']['first']:.0f} / {d['median_peak_rss_mb']['second']:.0f} MB",
            "recorded",
        ))
    out += [(*row, when(d)) for d in [load("peers")] if d for row in peer_rows(d)]
    d = load("export_time")
    if d:
        for spec, m in d["models"].items():
            s, st = m["median_seconds"], m["median_stages"]

            def stages(v: str, st: dict[str, Any] = st) -> str:
                return ", ".join(f"{k} {x:.0f}" for k, x in st[v].items() if k != "write")

            ratio = m.get("ratio")
            add(d, (
                f"export time: `nnx-build export {spec}` (3 targets, verified, empty compilation cache), "
                f"this code / {d['baseline'] or 'baseline'} (medians of {d['rounds']} round{'s' if d['rounds'] != 1 else ''})",
                "≤ 0.5",
                (f"{ratio:.2f} ({s['after']:.0f} vs {s['before']:.0f} s); " if ratio is not None else f"{s['after']:.0f} s; ")
                + f"stages (s) {stages('after')}" + (f"; before: {stages('before')}" if "before" in st else ""),
                mark(ratio <= 0.5) if ratio is not None else "recorded",
            ))
    return out


#: scale.py's stages and the peak RSS / weights the issue asks of each
SCALE_TARGETS = {"build": ("build", 1.2), "export_stablehlo": ("export", 1.5), "export_savedmodel": ("export", 1.5)}


def scale_rows(d: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """One row per stage of scale.json: peak RSS / weights (the process, and each phase), seconds."""
    rows = []
    weight_bytes = d.get("weight_bytes") or (d["params"] * 4 if d.get("params") else None)
    size = f"{d['params'] / 1e9:.1f} B params" if d.get("params") else "the model"
    for stage, (kind, limit) in SCALE_TARGETS.items():
        s = d["stages"].get(stage)
        if s is None:
            continue
        what = f"scale: {stage.replace('_', ' ')} of {size}, peak RSS / weights ({(weight_bytes or 0) / 1e9:.1f} GB)"
        if "error" in s:
            rows.append((what, f"≤ {limit}", f"failed: {s['error']}", "—"))
            continue
        extra = f"build {s['build_s']:.0f} s, first forward {s['first_forward_s']:.1f} s" if stage == "build" else \
            ", ".join(f"{k} {v:.0f} s" for k, v in s["stages_s"].items() if v >= 0.5)
        ratio = s.get("peak_over_weights")
        if ratio is None and weight_bytes:  # written before scale.py recorded the ratios
            ratio = s["peak_rss_mb"] * 2**20 / weight_bytes
        phases = s.get("phase_peak_over_weights", {})
        shown = "; phases: " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items() if k != "imports") if phases else ""
        result = (f"{ratio:.2f} ({s['peak_rss_mb'] * 2**20 / 1e9:.1f} GB){shown}" if ratio is not None else
                  f"{s['peak_rss_mb'] * 2**20 / 1e9:.1f} GB") + f"; {s['seconds']:.0f} s ({extra})"
        rows.append((what, f"≤ {limit} ({kind})", result, mark(None if ratio is None else ratio <= limit)))
    return rows


#: measure -> (what, unit, target, whether lower is met at the target; None: reported)
PEER_MEASURES: dict[str, tuple[str, str, str, float | None]] = {
    "check_wall": ("`check` / Keras `model_from_json`: wall", "s", "reported", None),
    "check_rss": ("`check` / Keras `model_from_json`: peak RSS", "MB", "reported", None),
    "build_forward_wall": ("`nnx-build SPEC` (build + forward), first run / `model_from_json` + `predict`: wall", "s", "≤ 0.8", 0.8),
    "build_forward_warm_wall": ("`nnx-build SPEC`, second run (compilation cache filled) / `model_from_json` + `predict`: wall",
                                "s", "≤ 0.3", 0.3),
    "build_forward_rss": ("`nnx-build SPEC` / `model_from_json` + `predict`: peak RSS", "MB", "reported", None),
    "jit_forward_b1": ("jitted forward, batch 1", "ms", "reported", None),
    "jit_forward_b8": ("jitted forward, batch 8", "ms", "reported", None),
    "savedmodel_export_s": ("SavedModel export time", "s", "reported", None),
    "onnx_export_s": ("ONNX export time", "s", "reported", None),
    "export_peak_rss": ("export process peak RSS", "MB", "≤ 1.0", 1.0),
    "savedmodel_bytes": ("SavedModel folder size", "MB", "reported", None),
    "onnx_bytes": ("ONNX file(s) size", "MB", "reported", None),
    "ort_b1": ("onnxruntime latency of the ONNX files, batch 1", "ms", "≤ 1.0", 1.0),
    "ort_b8": ("onnxruntime latency of the ONNX files, batch 8", "ms", "≤ 1.0", 1.0),
}


def peer_rows(d: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """One row per measure and model of peers.json: the ratio nnx-build / Keras and both values."""
    rows = []
    for model, m in d["models"].items():
        for key, (what, unit, target, limit) in PEER_MEASURES.items():
            if key not in m["ratios"]:
                continue
            v = m["values"][key]
            scale = 1 / 2**20 if unit == "MB" and "bytes" in key else 1

            def fmt(x: float, unit: str = unit, scale: float = scale) -> str:
                return f"{x * scale:.0f}" if unit == "MB" else f"{x:.3g}"

            result = f"{m['ratios'][key]:.2f} ({fmt(v['ours'])} vs {fmt(v['keras'])} {unit})"
            ratio = m["ratios"][key]
            if key.startswith("ort_") and f"{key}_same" in m["ratios"]:  # the target is judged on the same network
                ratio = m["ratios"][f"{key}_same"]
                result = (f"same network (the spec in Keras' v1 layout): {ratio:.2f} ({fmt(v['same'])} vs {fmt(v['keras'])} {unit}); "
                          f"the zoo spec (v1.5, 6.7% more FLOPs): {m['ratios'][key]:.2f} ({fmt(v['ours'])} {unit})")
            if key.startswith("ort_") and f"{key}_baseline" in m["ratios"]:
                result += f"; before the ONNX rewrites {m['ratios'][key + '_baseline']:.2f} ({fmt(v['baseline'])} {unit})"
            if "bytes" in key:
                result += f", {v['ours'] / m['weights_bytes']['ours']:.2f}× the weights"
            verdict = "recorded" if limit is None else mark(ratio <= limit)
            rows.append((f"peers `{model}` vs Keras {d['keras']}: {what}, nnx-build / Keras", target, result, verdict))
    return rows


def max_artifact_error() -> float | None:
    d = load("artifacts")
    if not d:
        return None
    errs = [r["max_abs_err"] for m in d["models"].values() for r in m["results"].values()
            if isinstance(r, dict) and "max_abs_err" in r]
    return max(errs) if errs else None


def render() -> str:
    """The table and the machine it ran on, as in benchmarks/README.md."""
    lines = ["| benchmark | target | result | | run |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows()]
    m = (load("dispatch") or load("parity") or {}).get("machine")
    if m:
        lines.append("")
        lines.append(f"Machine: {m['cpu_model']}, {m['cpus']} CPUs, {m.get('mem_gb', '?')} GB, {m['platform']}; "
                     + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".")
    loads = [d["machine"]["load_avg_1m"] for d in map(load, NAMES) if d and "load_avg_1m" in d.get("machine", {})]
    if loads:
        lines.append(f"Load average when each script started: {min(loads):.2f}–{max(loads):.2f} (2 cores, shared).")
    err = max_artifact_error()
    if err is not None:
        lines.append(f"Largest difference of an artifact's output from the fast path's: {err:.2g}.")
    return "\n".join(lines) + "\n"


def readme_block(text: str) -> str:
    """The generated part of ``text`` (between the markers), without them."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--readme"]:
        text = README.read_text(encoding="utf-8")
        start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
        README.write_text(text[:start] + "\n" + render() + text[end:], encoding="utf-8")
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    print(render(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
