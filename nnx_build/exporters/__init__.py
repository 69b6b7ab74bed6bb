"""Exporters: StableHLO, TF SavedModel and ONNX, verified against JAX, written atomically.

>>> result = export("specs/seed/model.yaml", "build/model", to=("stablehlo", "onnx"))  # doctest: +SKIP
>>> result.manifest["verification"]["status"]                                          # doctest: +SKIP
'passed'

Layout of ``DIR``::

    manifest.json
    stablehlo/main.mlir  main.jax_export  <method>.mlir ...  [weights.npz]
    savedmodel/1/saved_model.pb  variables/
    onnx/main.onnx  <method>.onnx

Nothing heavy is imported here: TensorFlow, jax2onnx and onnxruntime load when used.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import did_you_mean
from .errors import ConversionError, ExportError, OutputExistsError, VerificationError, WeightsError

__all__ = [
    "PLATFORMS",
    "TARGETS",
    "ConversionError",
    "ExportError",
    "ExportResult",
    "OutputExistsError",
    "VerificationError",
    "WeightsError",
    "export",
    "verify_dir",
]

TARGETS = ("stablehlo", "savedmodel", "onnx")
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")


@dataclass
class ExportResult:
    """What :func:`export` / :func:`verify_dir` did: the folder, its manifest, timings."""

    out: Path
    manifest: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def files(self) -> list[dict[str, Any]]:
        return self.manifest.get("files", [])

    @property
    def verification(self) -> dict[str, Any]:
        return self.manifest.get("verification", {})


# ---- progress ---------------------------------------------------------------------------


class _Stages:
    """A rich Progress with one spinner line per stage (silent without a console)."""

    def __init__(self, console: Any | None, stages: Sequence[str]):
        self.console = console
        self.progress: Any = None
        self.tasks: dict[str, Any] = {}
        self.stages = list(stages)
        self.seconds: dict[str, float] = {}

    def __enter__(self) -> _Stages:
        if self.console is not None:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                SpinnerColumn(finished_text="[green]✓"),
                TextColumn("{task.description:<12}"),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )
            self.progress.start()
            for s in self.stages:
                self.tasks[s] = self.progress.add_task(s, total=1, start=False, status="[dim]waiting")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()

    @contextlib.contextmanager
    def stage(self, name: str, status: str = "running") -> Iterator[dict[str, str]]:
        info = {"done": "done"}
        task = self.tasks.get(name)
        if task is not None:
            self.progress.start_task(task)
            self.progress.update(task, status=status)
        t0 = time.perf_counter()
        try:
            yield info
        except BaseException:
            if task is not None:
                self.progress.update(task, status="[red]failed")
                self.progress.stop_task(task)
            raise
        finally:
            self.seconds[name] = round(time.perf_counter() - t0, 3)
        if task is not None:
            self.progress.update(task, completed=1, status=info["done"])
            self.progress.stop_task(task)


# ---- output folder ----------------------------------------------------------------------


def _parse_list(value: str | Sequence[str], allowed: Sequence[str], what: str) -> tuple[str, ...]:
    items = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    for v in items:
        if v not in allowed:
            raise ExportError(f"unknown {what} '{v}'{did_you_mean(v, allowed)}; choose from {', '.join(allowed)}")
    if not items:
        raise ExportError(f"no {what} given; choose from {', '.join(allowed)}")
    return tuple(dict.fromkeys(items))


def _make_temp_dir(out: Path) -> Path:
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; the export is an ordinary folder
        return tmp
    except OSError as e:
        raise ExportError(f"cannot write to {parent}: {e.strerror or e}") from e


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _exchange(a: Path, b: Path) -> bool:
    """Swaps two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _commit(tmp: Path, out: Path, force: bool) -> None:
    """Renames ``tmp`` to ``out``; with ``force`` an old ``out`` is moved aside first, then deleted."""
    if not (out.exists() or out.is_symlink()):
        try:
            os.rename(tmp, out)
        except OSError as e:
            raise ExportError(f"cannot move the export into {out}: {e.strerror or e}") from e
        return
    if not force:
        raise OutputExistsError(f"{out} already exists; pass --force to replace it")
    if out.is_dir() and not out.is_symlink() and _exchange(tmp, out):
        # one atomic step: `out` is the new export, `tmp` the old one, at every instant
        shutil.rmtree(tmp, ignore_errors=True)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    aside.rmdir()
    try:
        os.rename(out, aside)
    except OSError as e:
        raise ExportError(f"cannot move the old {out} aside: {e.strerror or e}") from e
    try:
        os.rename(tmp, out)
    except OSError as e:
        os.rename(aside, out)
        raise ExportError(f"cannot move the export into {out}: {e.strerror or e}") from e
    shutil.rmtree(aside, ignore_errors=True)


# ---- entries ---------------------------------------------------------------------------


def _entries(model: Any, program: Any) -> list[Any]:
    import jax

    from ..fastpath import fast_forward
    from .common import MAIN, Entry, OutputInfo, symbolic_args

    entries = []
    names = [None, *(m for m, _ in program.root.methods)]
    for method in names:
        name = MAIN if method is None else method
        if method == MAIN:
            raise ExportError(f"method name '{MAIN}' is reserved by the exporters for __call__; rename the method")
        ff = fast_forward(model, method)
        graph = program.root.main if method is None else dict(program.root.methods)[method]
        if len(ff.inputs) != len(graph.inputs):
            missing = [n for n in graph.inputs if n not in dict(graph.input_specs)]
            raise ExportError(f"entry '{name}': input(s) {', '.join(missing)} have no shape and dtype in the spec; declare them to export")
        try:
            shapes = jax.eval_shape(ff.closed(), *symbolic_args(ff.inputs))
        except Exception as e:
            raise ConversionError(f"entry '{name}' cannot be traced with symbolic shapes: {e}") from e
        leaves = tuple(shapes) if isinstance(shapes, tuple | list) else (shapes,)
        out_names = list(ff.outputs)
        if len(out_names) != len(leaves):
            out_names = [f"output_{i}" for i in range(len(leaves))]
        # an unnamed step's value (``_relu_3``) is exported as ``output`` / ``output_<i>``
        out_names = [n if not n.startswith("_") else ("output" if len(leaves) == 1 else f"output_{i}") for i, n in enumerate(out_names)]
        outputs = tuple(
            OutputInfo(n, tuple(d if isinstance(d, int) else str(d) for d in s.shape), str(s.dtype))
            for n, s in zip(out_names, leaves, strict=True)
        )
        entries.append(Entry(name, ff, ff.inputs, outputs))
    return entries


def _build(spec: Any, seed: int | None, weights: str | os.PathLike[str] | None, options: Any = None) -> tuple[Any, Any, int]:
    from .. import pipeline

    built = pipeline.build(spec, pipeline.make_options(options, seed=seed, weights=weights))
    return built.program, built.model, built.program.spec.seed if seed is None else seed


def _spec_record(spec: Any, program: Any) -> dict[str, Any]:
    from .common import file_sha256

    record: dict[str, Any] = {"name": program.spec.name, "path": None, "sha256": None}
    if isinstance(spec, str | os.PathLike) and _is_file(spec):
        record["path"] = str(Path(spec).resolve())
        record["sha256"] = file_sha256(Path(spec))
    elif isinstance(spec, str):
        import hashlib

        record["sha256"] = hashlib.sha256(spec.encode()).hexdigest()
    return record


def _is_file(spec: str | os.PathLike[str]) -> bool:
    try:
        return Path(spec).is_file()
    except (OSError, ValueError):  # spec text is not a path
        return False


def _weights_record(weights: Any) -> dict[str, Any] | None:
    if weights is None:
        return None
    from .common import file_sha256

    p = Path(weights)
    return {"path": str(p.resolve()), "sha256": file_sha256(p) if p.is_file() else None}


# ---- export ----------------------------------------------------------------------------


def export(
    spec: Any,
    out: str | os.PathLike[str],
    *,
    to: str | Sequence[str] = TARGETS,
    weights: str | os.PathLike[str] | None = None,
    force: bool = False,
    verify: bool = True,
    platforms: str | Sequence[str] = ("cpu",),
    seed: int | None = None,
    tolerance: float | None = None,
    batch_sizes: Sequence[int] = (1, 7),
    weights_as_args: bool = False,
    version: int = 1,
    console: Any | None = None,
    options: Any = None,
) -> ExportResult:
    """Builds ``spec`` and exports it to ``out``, verified, atomically.

    Args:
      spec: a spec path, spec text or :class:`~nnx_build.Spec`.
      out: the folder to create (written beside as ``.NAME.*.tmp``, renamed when complete).
      to: targets, ``"stablehlo,savedmodel,onnx"`` or a sequence.
      weights: an ``.npz`` of the pure-dict state (keys ``"linear/kernel"``) to load.
      force: replace an existing ``out`` (moved aside, replaced, then deleted).
      verify: reload every artifact in a fresh process and compare with JAX.
      platforms: lowering platforms for StableHLO and SavedModel (``cpu,cuda,tpu``).
      seed: overrides the spec's seed (ignored for weights loaded from ``weights``).
      tolerance: abs and rel tolerance of floating outputs (default 1e-5 for float32).
      batch_sizes: batch sizes verified (two or more).
      weights_as_args: StableHLO keeps the weights as ``@main`` arguments, ``weights.npz`` beside.
      version: the SavedModel version folder (TF Serving).
      console: a rich Console for progress; ``None`` is silent.
      options: a :class:`nnx_build.pipeline.Options` (limits, budgets, plugins) for the build.

    Raises:
      OutputExistsError, ExportError, WeightsError, ConversionError, VerificationError
      (all :class:`~nnx_build.NnxBuildError`); ``out`` is then left as it was.
    """
    from .manifest import file_entries, new_manifest, write_manifest

    targets = _parse_list(to, TARGETS, "export target")
    platform_list = _parse_list(platforms, PLATFORMS, "platform")
    out = Path(out)
    if (out.exists() or out.is_symlink()) and not force:
        raise OutputExistsError(f"{out} already exists; pass --force to replace it")
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} exists and is not a folder")
    if weights is not None and not Path(weights).exists():
        raise WeightsError(f"weights file {weights} does not exist")
    if verify and len(batch_sizes) < 1:
        raise ExportError("verification needs at least one batch size")

    stages = ["build", *targets, *(["verify"] if verify else []), "write"]
    tmp = _make_temp_dir(out)
    try:
        with _Stages(console, stages) as progress:
            with progress.stage("build", "building the model") as info:
                program, model, seed = _build(spec, seed, weights, options)
                entries = _entries(model, program)
                nbytes = entries[0].ff.weight_bytes()
                info["done"] = f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, {_size(nbytes)} of weights"
            artifacts: dict[str, Any] = {}
            for target in targets:
                with progress.stage(target, "converting") as info:
                    artifacts[target] = _export_target(target, entries, tmp, platform_list, weights_as_args, version)
                    info["done"] = "written"
            manifest = new_manifest(
                spec=_spec_record(spec, program),
                seed=seed,
                weights=_weights_record(weights),
                targets=list(targets),
                platforms=list(platform_list),
                dims=dict(program.dims),
                entries=[e.to_json() for e in entries],
                artifacts=artifacts,
            )
            manifest["files"] = file_entries(tmp)
            manifest["verification"] = {"status": "skipped"}
            write_manifest(tmp, manifest)
            if verify:
                with progress.stage("verify", f"reloading in a fresh process, batch {', '.join(map(str, batch_sizes))}") as info:
                    record = _verify(tmp, manifest, entries, program, tuple(batch_sizes), tolerance)
                    manifest["verification"] = record
                    if record["status"] != "passed":
                        raise VerificationError(_failure_message(record))
                    worst = max((r["max_abs_err"] for r in record["results"]), default=0.0)
                    info["done"] = f"{len(record['results'])} comparisons passed (max abs err {worst:.2g})"
            with progress.stage("write", f"renaming into {out}") as info:
                manifest["seconds"] = dict(progress.seconds)
                write_manifest(tmp, manifest)
                _commit(tmp, out, force)
                info["done"] = str(out)
        return ExportResult(out, manifest, dict(progress.seconds))
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _export_target(target: str, entries: list[Any], tmp: Path, platforms: tuple[str, ...], weights_as_args: bool, version: int) -> dict[str, Any]:
    if target == "stablehlo":
        from .stablehlo import export_stablehlo

        section = export_stablehlo(entries, tmp / "stablehlo", platforms=platforms, weights_as_args=weights_as_args)
        return {"dir": "stablehlo", **section}
    if target == "savedmodel":
        from .savedmodel import export_savedmodel

        section = export_savedmodel(entries, tmp / "savedmodel", version=version, platforms=platforms)
        return section
    from .onnx import export_onnx

    return {"dir": "onnx", **export_onnx(entries, tmp / "onnx")}


def _verify(root: Path, manifest: dict[str, Any], entries: list[Any], program: Any, batch_sizes: tuple[int, ...], tolerance: float | None) -> dict[str, Any]:
    from .verify import verify_export

    forwards = {e.name: e.ff for e in entries}
    return verify_export(root, manifest, forwards, dims=dict(program.dims), batch_sizes=batch_sizes, tolerance=tolerance)


def _failure_message(record: dict[str, Any]) -> str:
    if record.get("error"):
        return f"verification failed: {record['error']}"
    failures = record.get("failures", [])
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    return f"verification failed: {failures[0] if failures else 'unknown reason'}{more}"


def verify_dir(
    out: str | os.PathLike[str],
    *,
    spec: Any | None = None,
    weights: str | os.PathLike[str] | None = None,
    tolerance: float | None = None,
    batch_sizes: Sequence[int] = (1, 7),
    console: Any | None = None,
    options: Any = None,
) -> ExportResult:
    """Re-verifies an export folder against its spec (recorded in the manifest, or ``spec``).

    Rebuilds the model with the recorded seed (and weights file), reloads every artifact in a
    fresh process, updates ``manifest.json``'s ``verification`` and raises
    :class:`VerificationError` on a mismatch.
    """
    from .common import file_sha256
    from .manifest import read_manifest, write_manifest

    out = Path(out)
    manifest = read_manifest(out)
    recorded = manifest.get("spec", {})
    if spec is None:
        if not recorded.get("path"):
            raise ExportError(f"{out}/manifest.json records no spec file; pass the spec")
        spec = recorded["path"]
        if not Path(spec).is_file():
            raise ExportError(f"the spec {spec} recorded in {out}/manifest.json is gone; pass the spec")
        if recorded.get("sha256") and file_sha256(Path(spec)) != recorded["sha256"]:
            raise ExportError(f"the spec {spec} changed since the export (sha256 differs); pass the spec to verify against it")
    if weights is None and manifest.get("weights"):
        weights = manifest["weights"]["path"]
    with _Stages(console, ["build", "verify"]) as progress:
        with progress.stage("build", "building the model") as info:
            program, model, _ = _build(spec, manifest.get("seed"), weights, options)
            entries = _entries(model, program)
            info["done"] = f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"
        with progress.stage("verify", "reloading in a fresh process") as info:
            record = _verify(out, manifest, entries, program, tuple(batch_sizes), tolerance)
            info["done"] = record["status"]
    manifest["verification"] = record
    write_manifest(out, manifest)
    if record["status"] != "passed":
        raise VerificationError(_failure_message(record))
    return ExportResult(out, manifest, dict(progress.seconds))
