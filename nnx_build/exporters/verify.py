"""Verification: reload every artifact in a fresh process and compare with JAX.

The parent draws random inputs for each entry point at each batch size, runs the JAX
model (the fast path) on them, and starts ``python -m nnx_build.exporters.verify`` on
the export folder; the child loads each artifact the way its runtime would (StableHLO:
``jax.export.deserialize`` and the ``.mlir`` text compiled by XLA; SavedModel:
``tf.saved_model.load`` and its signatures; ONNX: ``onnxruntime``), runs the same
inputs and writes the outputs back. The parent records max abs / rel errors.

A result passes when ``|got - want| <= tol + tol * |want|`` everywhere; ``max_rel_err``
is ``max |got - want| / max |want|``.
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
from typing import Any

import numpy as np

from .dtypes import DEFAULT_TOLERANCE, as_float, load_arrays, np_dtype, ort_feeds, ort_outputs, save_arrays

__all__ = ["DEFAULT_BATCH_SIZES", "DEFAULT_TOLERANCE", "make_inputs", "run_artifacts", "tolerance_for", "verify_export"]

DEFAULT_BATCH_SIZES = (1, 7)
SEP = "|"


def tolerance_for(dtype: str, tolerance: float | None) -> float:
    if np.issubdtype(_np_dtype(dtype), np.inexact) or dtype == "bfloat16":
        return float(tolerance) if tolerance is not None else DEFAULT_TOLERANCE.get(dtype, 1e-5)
    return 0.0


_np_dtype = np_dtype


def _batch_dim(entries: list[dict[str, Any]]) -> str | None:
    dims = [d for e in entries for i in e["inputs"] for d in i["shape"] if isinstance(d, str)]
    if "batch" in dims:
        return "batch"
    return dims[0] if dims else None


def make_inputs(
    entries: list[dict[str, Any]], batch_sizes: tuple[int, ...], dims: dict[str, int], seed: int = 0
) -> dict[str, np.ndarray]:
    """Random inputs keyed ``entry|batch|input``; the batch dim takes each batch size."""
    rng = np.random.default_rng(seed)
    batch = _batch_dim(entries)
    out: dict[str, np.ndarray] = {}
    for e in entries:
        for b in batch_sizes:
            for i in e["inputs"]:
                shape = tuple(b if d == batch else (dims.get(d, 1) if isinstance(d, str) else d) for d in i["shape"])
                dt = _np_dtype(i["dtype"])
                if np.issubdtype(dt, np.bool_):
                    v = rng.integers(0, 2, shape).astype(dt)
                elif np.issubdtype(dt, np.integer):
                    v = rng.integers(0, 2, shape).astype(dt)
                else:
                    v = rng.standard_normal(shape).astype(dt)
                out[SEP.join((e["name"], str(b), i["name"]))] = v
    return out


# ---- the child: load each artifact, run it ----------------------------------------------


def _outputs(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, tuple | list) else (value,)


def _run_stablehlo(root: Path, manifest: dict[str, Any], inputs: dict[str, np.ndarray], results: dict[str, np.ndarray]) -> None:
    import dataclasses

    import jax
    from jax import export
    from jax._src.interpreters import mlir as jmlir
    from jax._src.lib.mlir import ir

    section = manifest["artifacts"]["stablehlo"]
    base = root / section["dir"]
    weights: tuple[Any, ...] = ()
    if section.get("weights_as_args"):
        with np.load(base / section["weights"]) as w:
            weights = ({k: w[k] for k in w.files},)
    platform = jax.default_backend()
    for e in manifest["entries"]:
        files = section["entries"][e["name"]]
        exp = export.deserialize(bytearray((base / files["serialized"]).read_bytes()))
        runs = {"stablehlo": exp}
        mlir_name = files["mlir"].get(platform)
        if mlir_name is not None:  # the .mlir text itself, compiled by XLA
            with jmlir.make_ir_context(), ir.Location.unknown():
                module = ir.Module.parse((base / mlir_name).read_text(encoding="utf-8"))
                main = next(op for op in module.body.operations if ir.StringAttr(op.attributes["sym_name"]).value == "main")
                nargs = len(main.regions[0].blocks[0].arguments)
                if nargs != files["main_args"]:
                    raise RuntimeError(f"{mlir_name}: @main takes {nargs} arguments, expected {files['main_args']}")
                code = jmlir.module_to_bytecode(module)
            runs["stablehlo-mlir"] = dataclasses.replace(exp, mlir_module_serialized=code, platforms=(platform,))
        for target, fn in runs.items():
            for key_batch in _batches(inputs, e["name"]):
                args = [inputs[SEP.join((e["name"], key_batch, i["name"]))] for i in e["inputs"]]
                outs = _outputs(fn.call(*weights, *args))
                for o, v in zip(e["outputs"], outs, strict=True):
                    results[SEP.join((target, e["name"], key_batch, o["name"]))] = np.asarray(v)


def _batches(inputs: dict[str, np.ndarray], entry: str) -> list[str]:
    return sorted({k.split(SEP)[1] for k in inputs if k.split(SEP)[0] == entry}, key=int)


def _run_savedmodel(root: Path, manifest: dict[str, Any], inputs: dict[str, np.ndarray], results: dict[str, np.ndarray]) -> None:
    from .savedmodel import import_tensorflow

    tf = import_tensorflow()
    section = manifest["artifacts"]["savedmodel"]
    loaded = tf.saved_model.load(str(root / section["dir"]))
    for e in manifest["entries"]:
        sig = loaded.signatures[section["signatures"][e["name"]]]
        for b in _batches(inputs, e["name"]):
            feeds = {i["name"]: tf.constant(inputs[SEP.join((e["name"], b, i["name"]))]) for i in e["inputs"]}
            outs = sig(**feeds)
            for o in e["outputs"]:
                results[SEP.join(("savedmodel", e["name"], b, o["name"]))] = outs[o["name"]].numpy()


def _run_onnx(root: Path, manifest: dict[str, Any], inputs: dict[str, np.ndarray], results: dict[str, np.ndarray]) -> None:
    import onnxruntime as ort

    section = manifest["artifacts"]["onnx"]
    options = ort.SessionOptions()
    options.log_severity_level = 3
    for e in manifest["entries"]:
        path = root / section["dir"] / section["entries"][e["name"]]
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        for b in _batches(inputs, e["name"]):
            feeds = ort_feeds(ort, {i["name"]: inputs[SEP.join((e["name"], b, i["name"]))] for i in e["inputs"]})
            for name, v in zip(names, ort_outputs(session.run_with_ort_values(None, feeds)), strict=True):
                results[SEP.join(("onnx", e["name"], b, name))] = np.asarray(v)


def _peak_rss_mb() -> float | None:
    from ..memory import peak_rss_mb

    return peak_rss_mb()


RUNNERS = {"stablehlo": _run_stablehlo, "savedmodel": _run_savedmodel, "onnx": _run_onnx}


def run_artifacts(root: Path, inputs_path: Path, out_path: Path) -> int:
    """The child's work: run every artifact of ``root`` on the saved inputs."""
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    inputs = load_arrays(inputs_path)
    results: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    timings: dict[str, float] = {}
    for target in manifest["targets"]:
        t0 = time.perf_counter()
        try:
            RUNNERS[target](root, manifest, inputs, results)
        except Exception as e:  # noqa: BLE001  (reported per target to the parent)
            errors[target] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        timings[target] = round(time.perf_counter() - t0, 3)
    save_arrays(out_path, results)
    info = {"errors": errors, "seconds": timings, "peak_rss_mb": _peak_rss_mb()}
    out_path.with_suffix(".json").write_text(json.dumps(info), encoding="utf-8")
    return 0


# ---- the parent: inputs, child process, comparison ---------------------------------------


def _compare(got: np.ndarray, want: np.ndarray, tol: float) -> tuple[float, float, bool]:
    if got.shape != want.shape:
        return float("inf"), float("inf"), False
    g = as_float(got)
    w = as_float(want)
    diff = np.abs(g - w)
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(w).max()) if w.size else 0.0
    max_rel = max_abs / scale if scale > 0 else max_abs
    ok = bool(np.all(diff <= tol + tol * np.abs(w))) and bool(np.isfinite(g).all() == np.isfinite(w).all())
    return max_abs, max_rel, ok


def verify_export(
    root: Path,
    manifest: dict[str, Any],
    forwards: dict[str, Any],
    *,
    dims: dict[str, int] | None = None,
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES,
    tolerance: float | None = None,
    seed: int = 0,
    timeout: float | None = 900,
) -> dict[str, Any]:
    """Runs the child on ``root`` (which must hold ``manifest.json``); returns the verification record.

    ``forwards`` maps entry names to callables (the JAX fast path) giving the expected outputs.
    """
    entries = manifest["entries"]
    inputs = make_inputs(entries, tuple(batch_sizes), dims or {}, seed)
    with tempfile.TemporaryDirectory(prefix="nnx-build-verify-") as tmp:
        in_path = Path(tmp) / "inputs.npz"
        out_path = Path(tmp) / "outputs.npz"
        save_arrays(in_path, inputs)
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "nnx_build.exporters.verify", str(root), "--inputs", str(in_path), "--out", str(out_path)],
            capture_output=True, text=True, env=env, timeout=timeout, check=False,
        )
        seconds = time.perf_counter() - t0
        if proc.returncode != 0 or not out_path.exists():
            tail = [line for line in (proc.stderr or "").strip().splitlines() if line.strip()][-1:] or ["no output"]
            return {"status": "failed", "error": f"verification process exited with {proc.returncode}: {tail[0]}", "results": []}
        got = load_arrays(out_path)
        child = json.loads(out_path.with_suffix(".json").read_text(encoding="utf-8"))

    results: list[dict[str, Any]] = []
    failures: list[str] = []
    runs = [t for t in manifest["targets"]]
    if "stablehlo" in runs:
        runs.insert(runs.index("stablehlo") + 1, "stablehlo-mlir")
    for e in entries:
        fwd = forwards[e["name"]]
        for b in batch_sizes:
            args = [inputs[SEP.join((e["name"], str(b), i["name"]))] for i in e["inputs"]]
            want = [np.asarray(v) for v in _outputs(fwd(*args))]
            for target in runs:
                base = target.split("-")[0]
                if base in child["errors"]:
                    continue
                for o, w in zip(e["outputs"], want, strict=True):
                    key = SEP.join((target, e["name"], str(b), o["name"]))
                    if key not in got:
                        if target == "stablehlo-mlir":
                            continue  # no .mlir for this backend
                        failures.append(f"{target} {e['name']} gave no output '{o['name']}'")
                        continue
                    tol = tolerance_for(o["dtype"], tolerance)
                    max_abs, max_rel, ok = _compare(got[key], w, tol)
                    results.append({
                        "target": target, "entry": e["name"], "batch": b, "output": o["name"],
                        "max_abs_err": max_abs, "max_rel_err": max_rel, "tolerance": tol, "ok": ok,
                    })
                    if not ok:
                        failures.append(
                            f"{target} {e['name']}:{o['name']} at batch {b} differs from JAX "
                            f"(max abs err {max_abs:.3g}, max rel err {max_rel:.3g}, tolerance {tol:g})"
                        )
    for target, msg in child["errors"].items():
        failures.insert(0, f"{target} could not be reloaded and run: {msg}")
    return {
        "status": "passed" if not failures else "failed",
        "batch_sizes": list(batch_sizes),
        "tolerance": tolerance,
        "seed": seed,
        "seconds": round(seconds, 3),
        "child_seconds": child.get("seconds", {}),
        "child_peak_rss_mb": child.get("peak_rss_mb"),
        "failures": failures,
        "results": results,
    }


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nnx_build.exporters.verify", description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="export folder (holds manifest.json)")
    parser.add_argument("--inputs", type=Path, required=True, help=".npz of inputs keyed entry|batch|input")
    parser.add_argument("--out", type=Path, required=True, help=".npz to write outputs to (errors in .json beside)")
    args = parser.parse_args(argv)
    return run_artifacts(args.dir, args.inputs, args.out)


if __name__ == "__main__":
    raise SystemExit(_main())
