"""Verification: reload every artifact in a fresh process and compare with JAX.

The parent draws inputs for each entry point at each size (:mod:`.inputs`: every symbolic
dim varied, integer ids over their real range), runs the JAX model (the fast path) on
them, and starts ``python -m nnx_build.exporters.verify`` on the export folder, one
process per target (:class:`Verification`; an export starts each as soon as its target is
written, while it converts the next: :mod:`.verify_pool`); the child loads the target's
artifacts with its ``load`` (the same code ``nnx-build bench`` times), runs the same inputs
and writes the outputs back. The parent records max abs / rel errors.

Further runtimes (:data:`RUNTIMES`, ``verify --runtime iree``) run a target's artifacts
too: IREE compiles the StableHLO module for CPU, the run ``stablehlo-iree``; its failures
count as the target's.

A result passes when ``|got - want| <= tol + tol * |want|`` everywhere; ``max_rel_err``
is ``max |got - want| / max |want|``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .dtypes import DEFAULT_TOLERANCE, as_float, load_arrays, np_dtype, save_arrays
from .inputs import DEFAULT_BATCH_SIZES, SEP, draw_inputs, to_numpy

__all__ = [
    "DEFAULT_BATCH_SIZES",
    "DEFAULT_TOLERANCE",
    "RUNTIMES",
    "Runtime",
    "Verification",
    "check_runtime",
    "run_artifacts",
    "target_of",
    "to_numpy",
    "tolerance_for",
    "verify_export",
]


def target_of(run: str) -> str:
    """The target a verification run belongs to: ``stablehlo`` for ``stablehlo``,
    ``stablehlo-mlir`` and ``stablehlo-iree`` (a run of a further runtime or reader is
    named ``<target>-<name>``). A registered target's name may hold ``-`` itself
    (``tf-lite``, ``tf-lite-edge``): the longest registered name the run starts with wins."""
    from .targets import TARGETS

    if run in TARGETS:
        return run
    known = [name for name in TARGETS if run.startswith(name + "-")]
    return max(known, key=len) if known else run.split("-")[0]


@dataclass(frozen=True)
class Runtime:
    """A runtime verification can also run a target's artifacts on (``--runtime NAME``).

    ``module`` exposes ``load(root, section, entry)`` like a target's; its runs are named
    ``<target>-<name>``. ``extra`` is the optional dependency installing ``requires``
    (modules) from ``packages`` (distributions, whose versions the verification records).
    """

    name: str
    target: str
    module: str
    extra: str
    requires: tuple[str, ...]
    packages: tuple[str, ...]
    summary: str


#: name -> runtime, for ``verify --runtime`` and ``export --verify-with``
RUNTIMES: dict[str, Runtime] = {
    "iree": Runtime(
        "iree", "stablehlo", "nnx_build.exporters.iree", "iree", ("iree.compiler", "iree.runtime"),
        ("iree-base-compiler", "iree-base-runtime"), "the StableHLO module compiled by IREE for CPU (llvm-cpu)",
    ),
}


def check_runtime(name: str, targets: list[str] | tuple[str, ...]) -> Runtime:
    """The runtime ``name``, known, installed and with its target among ``targets`` (else an :class:`ExportError`)."""
    import importlib.util

    from ..errors import did_you_mean
    from .errors import ExportError

    if name not in RUNTIMES:
        raise ExportError(f"unknown runtime '{name}'{did_you_mean(name, list(RUNTIMES))}; choose from {', '.join(RUNTIMES)}")
    rt = RUNTIMES[name]
    try:
        missing = [m for m in rt.requires if importlib.util.find_spec(m) is None]
    except ModuleNotFoundError:
        missing = list(rt.requires)
    if missing:
        raise ExportError(f"verifying with {name} needs the optional extra '{rt.extra}': pip install 'nnx-build[{rt.extra}]'")
    if rt.target not in targets:
        have = ", ".join(targets) or "none"
        raise ExportError(f"{name} runs the {rt.target} artifact, and this export has none (targets: {have}); export with --to {rt.target}")
    return rt


def tolerance_for(dtype: str, tolerance: float | None) -> float:
    if np.issubdtype(np_dtype(dtype), np.inexact) or dtype == "bfloat16":
        return float(tolerance) if tolerance is not None else DEFAULT_TOLERANCE.get(dtype, 1e-5)
    return 0.0


def _outputs(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, tuple | list) else (value,)


# ---- the child: load each artifact, run it ----------------------------------------------


def _target(name: str, modules: dict[str, str]) -> Any:
    """The target ``name``: from the table, or the ``TARGET`` of the module the parent named."""
    if name in modules:
        module, _, attr = modules[name].partition(":")
        return getattr(importlib.import_module(module), attr or "TARGET")
    from .targets import TARGETS

    return TARGETS[name]


def run_artifacts(
    root: Path,
    inputs_path: Path,
    out_path: Path,
    modules: dict[str, str] | None = None,
    runtimes: tuple[str, ...] = (),
    manifest_path: Path | None = None,
) -> int:
    """The child's work: run every artifact of ``root`` on the saved inputs (and on each of ``runtimes``).

    ``manifest_path`` names the manifest to read instead of ``root/manifest.json`` (while an
    export is still converting, the parent writes one per target it verifies).
    """
    manifest = json.loads((manifest_path or root / "manifest.json").read_text(encoding="utf-8"))
    inputs = load_arrays(inputs_path)
    results: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    timings: dict[str, float] = {}
    jobs: list[tuple[str, str, Any]] = [(name, name, None) for name in manifest["targets"]]
    jobs += [(f"{RUNTIMES[r].target}-{r}", RUNTIMES[r].target, RUNTIMES[r].module) for r in runtimes]
    for job, name, module in jobs:
        t0 = time.perf_counter()
        try:
            load = _target(name, modules or {}).load if module is None else importlib.import_module(module).load
            section = manifest["artifacts"][name]
            for e in manifest["entries"]:
                rounds = sorted({k.split(SEP)[1] for k in inputs if k.split(SEP)[0] == e["name"]}, key=int)
                for run_name, run in load(root, section, e).items():
                    run_name = run_name if module is None else f"{name}-{run_name}"
                    for r in rounds:
                        outs = run([inputs[SEP.join((e["name"], r, i["name"]))] for i in e["inputs"]])
                        for o, v in zip(e["outputs"], _outputs(outs), strict=True):
                            results[SEP.join((run_name, e["name"], r, o["name"]))] = to_numpy(v)
        except Exception as e:  # noqa: BLE001  (reported per target to the parent)
            errors[job] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        timings[job] = round(time.perf_counter() - t0, 3)
    save_arrays(out_path, results)
    from ..memory import peak_rss_mb

    info = {"errors": errors, "seconds": timings, "peak_rss_mb": peak_rss_mb()}
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


class Verification:
    """Verification of an export, one fresh process per target, started as each target is written.

    The inputs are drawn and JAX's outputs computed once, here; :meth:`start` launches a
    target's process (its artifacts must be complete) in a :class:`~.verify_pool.ChildPool`;
    :meth:`finish` waits for all of them and compares. Use it as a context manager: leaving
    it early kills the processes still running and removes the temporary folder.
    """

    def __init__(
        self,
        root: Path,
        entries: list[dict[str, Any]],
        forwards: dict[str, Any],
        *,
        dims: dict[str, int] | None = None,
        batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES,
        tolerance: float | None = None,
        int_ranges: dict[str, dict[str, list[int]]] | None = None,
        seed: int = 0,
        timeout: float | None = 900,
        runtimes: tuple[str, ...] = (),
        jobs: int | None = None,
    ):
        from .verify_pool import ChildPool

        self.root, self.entries, self.runtimes = root, entries, tuple(runtimes)
        self.batch_sizes, self.tolerance, self.int_ranges, self.seed = tuple(batch_sizes), tolerance, int_ranges or {}, seed
        self.drawn = draw_inputs(entries, forwards, self.batch_sizes, dims or {}, self.int_ranges, seed)
        self.tmp = Path(tempfile.mkdtemp(prefix="nnx-build-verify-"))
        self.inputs_path = self.tmp / "inputs.npz"
        save_arrays(self.inputs_path, self.drawn.inputs)
        self.pool = ChildPool(jobs, timeout)
        self.jobs: dict[str, Any] = {}

    def __enter__(self) -> Verification:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self, target: str, section: dict[str, Any]) -> None:
        """Launches (or queues) the process verifying ``target``, whose artifacts ``section`` describes."""
        from .targets import TARGETS
        from .verify_pool import ChildJob

        work = self.tmp / target
        work.mkdir()
        manifest = work / "manifest.json"
        manifest.write_text(json.dumps({"targets": [target], "artifacts": {target: section}, "entries": self.entries}), encoding="utf-8")
        known = TARGETS.get(target)
        job = ChildJob(
            target, self.root, self.inputs_path, work, manifest,
            modules={target: known.module} if known is not None and not known.module.startswith("nnx_build.") else {},
            runtimes=tuple(r for r in self.runtimes if RUNTIMES[r].target == target),
            folder=self.root / (known.folder if known is not None else section.get("dir", target)),
        )
        self.jobs[target] = job
        self.pool.start(job)

    def finish(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Waits for every process started, compares with JAX; the verification record of ``manifest``'s targets."""
        t0 = time.perf_counter()
        self.pool.widen()
        self.pool.wait()
        try:
            return self._record(manifest, time.perf_counter() - t0)
        finally:
            self.close()

    def close(self) -> None:
        """Kills the processes still running; removes the temporary folder."""
        import shutil

        self.pool.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _record(self, manifest: dict[str, Any], waited: float) -> dict[str, Any]:
        got: dict[str, np.ndarray] = {}
        child: dict[str, Any] = {"errors": {}, "seconds": {}, "peak_rss_mb": None}
        processes: dict[str, dict[str, Any]] = {}
        for target in manifest["targets"]:
            job = self.jobs.get(target)
            outcome = job.outcome if job is not None else "no verification process was started"
            processes[target] = {"seconds": job.seconds if job is not None else 0.0}
            if isinstance(outcome, str):
                child["errors"][target] = outcome
                continue
            arrays, info = outcome
            got.update(arrays)
            child["errors"].update(info["errors"])
            child["seconds"].update(info["seconds"])
            processes[target]["peak_rss_mb"] = info.get("peak_rss_mb")
            child["peak_rss_mb"] = max(child["peak_rss_mb"] or 0, info.get("peak_rss_mb") or 0)
        record = _compare_all(manifest, self.entries, self.drawn, got, child, self.tolerance)
        return {
            **record,
            **({"runtimes": list(self.runtimes), "runtime_versions": _versions(self.runtimes)} if self.runtimes else {}),
            "batch_sizes": list(self.batch_sizes),
            "sizes": self.drawn.sizes,
            "int_ranges": self.int_ranges,
            "tolerance": self.tolerance,
            "seed": self.seed,
            "seconds": round(waited, 3),
            "processes": processes,
            "child_seconds": child["seconds"],
            "child_peak_rss_mb": child["peak_rss_mb"],
        }


def _compare_all(
    manifest: dict[str, Any], entries: list[dict[str, Any]], drawn: Any, got: dict[str, np.ndarray], child: dict[str, Any], tolerance: float | None
) -> dict[str, Any]:
    """Every output of every run against JAX's: status, per-target status, failures, results."""
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    failed: set[str] = {target_of(job) for job in child["errors"]}
    for e in entries:
        fixed = {**manifest.get("static_dims", {}), **e.get("static_dims", {})}  # dims fixed at export
        for r, round_sizes in enumerate(drawn.sizes):
            sizes = {**fixed, **{d: n for d, n in round_sizes.items() if d not in fixed}}  # a variant's fixed dims are not varied
            where = _where(sizes)
            want = drawn.expected[e["name"]][r]
            runs = sorted({k.split(SEP)[0] for k in got if k.split(SEP)[1:3] == [e["name"], str(r)]}, key=_run_order(manifest))
            for target in manifest["targets"]:
                if target not in child["errors"] and not any(target_of(run) == target for run in runs):
                    failures.append(f"{target} {e['name']} gave no outputs at {where}")
                    failed.add(target)
            for run in runs:
                for o, w in zip(e["outputs"], want, strict=True):
                    key = SEP.join((run, e["name"], str(r), o["name"]))
                    if key not in got:
                        failures.append(f"{run} {e['name']} gave no output '{o['name']}'")
                        failed.add(target_of(run))
                        continue
                    tol = tolerance_for(o["dtype"], tolerance)
                    max_abs, max_rel, ok = _compare(got[key], w, tol)
                    results.append({
                        "target": run, "entry": e["name"], "batch": sizes.get("batch", sizes.get(drawn.batch_dim or "")), "dims": sizes,
                        "output": o["name"], "max_abs_err": max_abs, "max_rel_err": max_rel, "tolerance": tol, "ok": ok,
                    })
                    if not ok:
                        failed.add(target_of(run))
                        failures.append(
                            f"{run} {e['name']}:{o['name']} at {where} differs from JAX "
                            f"(max abs err {max_abs:.3g}, max rel err {max_rel:.3g}, tolerance {tol:g})"
                        )
    for target, msg in reversed(child["errors"].items()):
        failures.insert(0, f"{target} could not be reloaded and run: {msg}")
    return {
        "status": "passed" if not failures else "failed",
        "targets": {t: "failed" if t in failed else "passed" for t in manifest["targets"]},
        "failures": failures,
        "results": results,
    }


def verify_export(
    root: Path,
    manifest: dict[str, Any],
    forwards: dict[str, Any],
    *,
    dims: dict[str, int] | None = None,
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES,
    tolerance: float | None = None,
    int_ranges: dict[str, dict[str, list[int]]] | None = None,
    seed: int = 0,
    timeout: float | None = 900,
    runtimes: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Verifies every target of ``root`` (which must hold ``manifest.json``); returns the verification record.

    ``forwards`` maps entry names to callables (the JAX fast path) giving the expected outputs;
    ``int_ranges`` gives ``[low, high)`` of integer inputs (``{entry: {input: [0, 100]}}``);
    ``runtimes`` names further runtimes of :data:`RUNTIMES` to run the artifacts on. Each
    target runs in a process of its own (:class:`Verification`), as many at once as cores.
    """
    with Verification(
        root, manifest["entries"], forwards, dims=dims, batch_sizes=batch_sizes, tolerance=tolerance,
        int_ranges=int_ranges, seed=seed, timeout=timeout, runtimes=runtimes,
    ) as verification:
        verification.pool.widen()  # nothing converts beside
        for target in manifest["targets"]:
            verification.start(target, manifest["artifacts"][target])
        return verification.finish(manifest)


def _versions(runtimes: tuple[str, ...]) -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for package in (p for r in runtimes for p in RUNTIMES[r].packages):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out


def _where(sizes: dict[str, int]) -> str:
    return ", ".join(f"{d}={n}" for d, n in sizes.items()) or "fixed shapes"


def _run_order(manifest: dict[str, Any]) -> Any:
    order = list(manifest["targets"])

    def key(run: str) -> tuple[int, str]:
        base = target_of(run)
        return (order.index(base) if base in order else len(order), run)

    return key


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nnx_build.exporters.verify", description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="export folder (holds manifest.json)")
    parser.add_argument("--inputs", type=Path, required=True, help=".npz of inputs keyed entry|round|input")
    parser.add_argument("--out", type=Path, required=True, help=".npz to write outputs to (errors in .json beside)")
    parser.add_argument("--target", action="append", default=[], help="NAME=MODULE: a target defined outside nnx_build")
    parser.add_argument("--runtime", action="append", default=[], choices=sorted(RUNTIMES), help="a further runtime to run the artifacts on")
    parser.add_argument("--manifest", type=Path, help="the manifest to read (default: DIR/manifest.json)")
    args = parser.parse_args(argv)
    modules = dict(t.split("=", 1) for t in args.target)
    return run_artifacts(args.dir, args.inputs, args.out, modules, tuple(args.runtime), args.manifest)


if __name__ == "__main__":
    raise SystemExit(_main())
