"""Benchmarking: interleaved timing, and a spec's forward through every runtime.

Timing rules (shared by ``nnx-build bench`` and ``benchmarks/*.py``):

* every case is warmed up first (compilation, first-call allocation: never timed);
* cases are measured in *interleaved rounds* (A, B, C, B, C, A, C, A, B, ...: the start
  rotates) so that a noisy machine slows them alike, and each statistic is the median
  over rounds; ratios are medians of per-round ratios;
* a sample runs a case ``n`` times back to back, ``n`` calibrated once per case so a
  sample lasts at least ``min_sample_s`` (microsecond calls are not lost in timer noise);
* *latency* waits for every result before the next call; *throughput* issues the ``n``
  calls and waits once at the end (JAX's asynchronous dispatch overlaps them).

:func:`bench_spec` builds a spec once and times its ``__call__`` through the fast path
(:func:`~nnx_build.fast_forward`), through ``nnx.jit`` on the module, and through the
artifacts the exporters write (StableHLO reloaded with ``jax.export.deserialize``,
SavedModel with TensorFlow, ONNX with onnxruntime), all on the same inputs.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .text import first_line

__all__ = [
    "JAX_TARGETS",
    "Case",
    "Timing",
    "bench_spec",
    "interleaved",
    "machine_info",
    "peak_rss_mb",
    "bench_targets",
]

#: the targets timed in JAX itself; :func:`bench_targets` adds the export targets
JAX_TARGETS = ("fast_path", "nnx_jit")


def _block_jax(value: Any) -> Any:
    import jax

    return jax.block_until_ready(value)


@dataclass
class Case:
    """A callable to time. ``call()`` runs it once; ``block(result)`` waits for the result.

    For synchronous runtimes (TensorFlow eager, onnxruntime) ``block`` is a no-op.
    """

    call: Callable[[], Any]
    block: Callable[[Any], Any] = _block_jax


@dataclass
class Timing:
    """Per-call seconds of one case: median over rounds, with the 10th and 90th percentiles."""

    median: float
    p10: float
    p90: float
    rounds: int
    calls_per_round: int
    samples: list[float] = field(default_factory=list, repr=False)

    def to_json(self, scale: float = 1e3, unit: str = "ms") -> dict[str, Any]:
        return {
            f"median_{unit}": _round(self.median * scale),
            f"p10_{unit}": _round(self.p10 * scale),
            f"p90_{unit}": _round(self.p90 * scale),
            "rounds": self.rounds,
            "calls_per_round": self.calls_per_round,
        }


def _round(x: float, digits: int = 4) -> float:
    if x == 0 or x != x:
        return x
    from math import floor, log10

    return round(x, max(0, digits - 1 - floor(log10(abs(x)))))


def _quantile(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    if len(s) == 1:
        return s[0]
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _sample(case: Case, n: int, pipelined: bool) -> float:
    call, block = case.call, case.block
    t0 = time.perf_counter()
    if pipelined:
        outs = [call() for _ in range(n)]
        block(outs)
    else:
        for _ in range(n):
            block(call())
    return (time.perf_counter() - t0) / n


def _calibrate(case: Case, min_sample_s: float, max_calls: int) -> int:
    n = 1
    while n < max_calls:
        t = _sample(case, n, pipelined=False) * n
        if t >= min_sample_s:
            break
        n = min(max_calls, max(n * 2, int(n * min_sample_s / max(t, 1e-9) * 1.2)))
    return n


def interleaved(
    cases: Mapping[str, Case | Callable[[], Any]],
    *,
    rounds: int = 20,
    warmup: int = 3,
    min_sample_s: float = 0.005,
    max_calls: int = 10_000,
    pipelined: bool = False,
    max_seconds: float | None = None,
) -> dict[str, Timing]:
    """Times ``cases`` in interleaved rounds; returns per-call :class:`Timing` by name.

    Args:
      cases: name -> :class:`Case` (or a zero-argument callable whose result is a JAX value).
      rounds: rounds measured (each case sampled once per round, in turn).
      warmup: untimed calls of each case before calibration.
      min_sample_s: a sample lasts at least this long (calls per sample calibrated).
      pipelined: throughput mode: ``n`` calls issued, then one wait.
      max_seconds: stop after the round that crosses this much wall time (at least 3 rounds).
    """
    cs = {k: v if isinstance(v, Case) else Case(v) for k, v in cases.items()}
    for c in cs.values():
        for _ in range(warmup):
            c.block(c.call())
    calls = {k: _calibrate(c, min_sample_s, max_calls) for k, c in cs.items()}
    samples: dict[str, list[float]] = {k: [] for k in cs}
    t_start = time.perf_counter()
    order = list(cs)
    for r in range(rounds):
        # the starting case rotates: each case follows each other one equally often, so a
        # runtime that leaves work behind (thread pools winding down) slows no case alone
        shift = r % len(order)
        for k in order[shift:] + order[:shift]:
            samples[k].append(_sample(cs[k], calls[k], pipelined))
        if max_seconds is not None and r >= 2 and time.perf_counter() - t_start > max_seconds:
            break
    return {
        k: Timing(statistics.median(v), _quantile(v, 0.1), _quantile(v, 0.9), len(v), calls[k], v)
        for k, v in samples.items()
    }


def paired_ratio(timings: Mapping[str, Timing], num: str, den: str) -> float:
    """Median over rounds of ``num / den`` per round (pairs taken in the same round)."""
    a, b = timings[num].samples, timings[den].samples
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def machine_info() -> dict[str, Any]:
    """Where a benchmark ran: CPU model, cores, load, library versions."""
    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
    }
    try:
        info["load_avg_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            info["mem_gb"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    versions = {}
    from importlib import metadata

    for pkg in ("jax", "jaxlib", "flax", "tensorflow-cpu", "onnxruntime", "jax2onnx", "numpy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    info["versions"] = versions
    for var in ("OPENBLAS_CORETYPE", "XLA_FLAGS", "JAX_PLATFORMS"):
        if os.environ.get(var):
            info.setdefault("env", {})[var] = os.environ[var]
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_rss_mb() -> float:
    """Peak resident memory of this process, in MB."""
    from .memory import peak_rss_mb as peak

    return peak()


# ---- a spec through every runtime --------------------------------------------------------


def _max_abs_err(got: Sequence[Any], want: Sequence[Any]) -> float:
    import numpy as np

    worst = 0.0
    for g, w in zip(got, want, strict=True):
        g = np.asarray(g)
        w = np.asarray(w)
        if g.shape != w.shape:
            return float("inf")
        if g.size:
            worst = max(worst, float(np.max(np.abs(g.astype(np.float64) - w.astype(np.float64)))))
    return worst


def _tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, tuple | list) else (value,)



def _artifact_cases(
    targets: Sequence[str], entries: list[Any], inputs: list[Any], tmp: Path, errors: dict[str, str]
) -> tuple[dict[str, Case], dict[str, float], dict[str, list[Any]]]:
    """Exports the ``main`` entry to each target and loads it back as a timed case.

    Export and load are the targets' own (:data:`nnx_build.exporters.TARGETS`): the code
    verification runs, so a benchmark times what an export folder holds.
    """
    import numpy as np

    from .exporters import TARGETS, ExportOptions

    cases: dict[str, Case] = {}
    seconds: dict[str, float] = {}
    outputs: dict[str, list[Any]] = {}
    entry = entries[0].to_json()
    for name in targets:
        target = TARGETS[name]
        out = tmp / name
        out.mkdir()
        t0 = time.perf_counter()
        try:
            section = target.export(entries, out, ExportOptions())
        except Exception as e:  # noqa: BLE001  (one target failing leaves the others timed)
            errors[name] = f"export: {first_line(e, with_type=True)}"
            continue
        seconds[f"export_{name}"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        try:
            run = target.load(out, section, entry)[name]
            prepared = run.prepare(list(inputs))
            case = Case(lambda run=run, prepared=prepared: run.call(*prepared), run.block)
            outputs[name] = [np.asarray(v) for v in _tuple(case.block(case.call()))]
        except Exception as e:  # noqa: BLE001
            errors[name] = f"load: {first_line(e, with_type=True)}"
            continue
        seconds[f"load_{name}"] = round(time.perf_counter() - t0, 3)
        cases[name] = case
    return cases, seconds, outputs


def bench_targets() -> tuple[str, ...]:
    """What :func:`bench_spec` can time, in this order: the fast path (the reference),
    ``nnx.jit`` on the module, then every export target."""
    from .exporters import TARGETS as EXPORT_TARGETS

    return (*JAX_TARGETS, *EXPORT_TARGETS)


def bench_spec(
    spec: Any,
    *,
    batch: int | None = None,
    targets: Sequence[str] | None = None,
    seed: int | None = None,
    rounds: int = 20,
    warmup: int = 3,
    min_sample_s: float = 0.005,
    max_seconds: float | None = 60.0,
    throughput: bool = True,
    options: Any = None,
) -> dict[str, Any]:
    """Builds ``spec`` once and times its forward through each of ``targets``.

    Returns a JSON-ready dict: per target latency (ms, median, p10, p90) and throughput
    (samples/s), latency ratios to the fast path (median of per-round ratios), export and
    load seconds, max abs difference of each target's output from the fast path, and the
    errors of targets that could not be exported or loaded (the others are still timed).
    ``options`` (a :class:`nnx_build.pipeline.Options`) sets limits, budgets, plugins and the seed.
    """
    import jax
    import numpy as np
    from flax import nnx

    from . import pipeline
    from .exporters.entries import integer_ranges, trace_entries
    from .exporters.inputs import draw_inputs
    from .fastpath import fast_forward

    known = bench_targets()
    chosen = known if targets is None else tuple(targets)
    unknown = [t for t in chosen if t not in known]
    if unknown:
        raise ValueError(f"unknown bench target(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    chosen = ("fast_path", *(t for t in known if t in chosen and t != "fast_path"))
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    built = pipeline.build(spec, pipeline.make_options(options, seed=seed))
    program, report, model = built.program, built.report, built.model
    seconds["build"] = round(time.perf_counter() - t0, 3)

    ff = fast_forward(model)
    if len(ff.inputs) != len(program.root.main.inputs):
        raise ValueError("every input of the spec needs a shape and dtype to be benchmarked")
    dims = dict(program.dims)
    entry_json = [{"name": "main", "inputs": [i.to_json() for i in ff.inputs]}]
    if batch is None:
        batch = int(dims.get("batch", 1))
    # the spec's example sizes for the other named dims, token ids within their embedding
    host = draw_inputs(entry_json, {"main": ff}, (batch,), dims, integer_ranges(model, program.root), seed=0, vary=False)
    names = [i.name for i in ff.inputs]
    inputs = [host.inputs[f"main|0|{n}"] for n in names]
    dev = [jax.device_put(x) for x in inputs]  # the JAX cases read device arrays: no host copy per call
    fn, weights = ff

    cases: dict[str, Case] = {}
    t0 = time.perf_counter()
    want = [np.asarray(v) for v in _tuple(jax.block_until_ready(fn(weights, *dev)))]
    seconds["compile_fast_path"] = round(time.perf_counter() - t0, 3)
    cases["fast_path"] = Case(lambda: fn(weights, *dev))
    errors: dict[str, str] = {}
    outputs: dict[str, list[Any]] = {}
    if "nnx_jit" in chosen:
        graphdef, state = nnx.split(model)
        clone = nnx.merge(graphdef, state)
        clone.eval()

        @nnx.jit
        def jitted(m: Any, *xs: Any) -> Any:
            return m(*xs)

        t0 = time.perf_counter()
        outputs["nnx_jit"] = [np.asarray(v) for v in _tuple(jax.block_until_ready(jitted(clone, *dev)))]
        seconds["compile_nnx_jit"] = round(time.perf_counter() - t0, 3)
        cases["nnx_jit"] = Case(lambda: jitted(clone, *dev))
    exported = [t for t in chosen if t not in JAX_TARGETS]
    with tempfile.TemporaryDirectory(prefix="nnx-build-bench-") as tmp:
        if exported:
            entries = [e for e in trace_entries(model, program.root) if e.name == "main"]
            more, secs, outs = _artifact_cases(exported, entries, inputs, Path(tmp), errors)
            cases.update(more)
            seconds.update(secs)
            outputs.update(outs)
        lat = interleaved(cases, rounds=rounds, warmup=warmup, min_sample_s=min_sample_s, max_seconds=max_seconds)
        thr = (
            interleaved(cases, rounds=rounds, warmup=0, min_sample_s=min_sample_s, max_seconds=max_seconds, pipelined=True)
            if throughput
            else None
        )
    results: dict[str, Any] = {}
    for name in cases:
        r: dict[str, Any] = {"latency": lat[name].to_json()}
        if thr is not None:
            r["throughput_per_s"] = _round(batch / thr[name].median)
        r["calls_per_s"] = _round(1.0 / lat[name].median)
        if name in outputs:
            r["max_abs_err"] = _max_abs_err(outputs[name], want)
        results[name] = r
    ratios = {name: _round(paired_ratio(lat, name, "fast_path")) for name in cases if name != "fast_path"}
    return {
        "spec": str(spec) if isinstance(spec, str | os.PathLike) and len(str(spec)) < 4096 else program.spec.name,
        "name": program.spec.name,
        "params": report.total_params,
        "batch": batch,
        "inputs": {n: {"shape": list(x.shape), "dtype": str(x.dtype)} for n, x in zip(names, inputs, strict=True)},
        "targets": list(cases),
        "results": results,
        "latency_ratio_to_fast_path": ratios,
        "seconds": seconds,
        "errors": errors,
        "timing": {"rounds": rounds, "warmup": warmup, "min_sample_s": min_sample_s, "interleaved": True},
        "machine": machine_info(),
    }
