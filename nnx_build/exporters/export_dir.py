"""``export`` and ``verify_dir``: an export folder, built, converted, verified, renamed into place."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import did_you_mean
from ..text import human_bytes
from .common import release_memory
from .errors import ExportError, OutputExistsError, PartialExportError, VerificationError, WeightsError
from .progress import Stages
from .targets import parse_targets

__all__ = ["PLATFORMS", "ExportResult", "export", "release_memory", "verify_dir"]

PLATFORMS = ("cpu", "cuda", "rocm", "tpu")
#: targets converted after the others: TensorFlow's import stays resident (about 0.5 GB),
#: so the other conversions' temporaries come and go below it instead of on top of it
CONVERT_LAST = ("savedmodel",)


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


def _platforms(value: str | Sequence[str]) -> tuple[str, ...]:
    items = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    for v in items:
        if v not in PLATFORMS:
            raise ExportError(f"unknown platform '{v}'{did_you_mean(v, PLATFORMS)}; choose from {', '.join(PLATFORMS)}")
    if not items:
        raise ExportError(f"no platform given; choose from {', '.join(PLATFORMS)}")
    return tuple(dict.fromkeys(items))


def _entries_text(n: int) -> str:
    return f"{n} entr{'y' if n == 1 else 'ies'}"


def export(
    model_or_spec: Any,
    out: str | os.PathLike[str],
    *,
    to: str | Sequence[str] | None = None,
    weights: str | os.PathLike[str] | None = None,
    force: bool = False,
    verify: bool = True,
    platforms: str | Sequence[str] = ("cpu",),
    seed: int | None = None,
    tolerance: float | None = None,
    batch_sizes: Sequence[int] = (1, 7),
    weights_as_args: bool = False,
    version: int = 1,
    mlir_text: bool = False,
    dims: Mapping[str, int] | Sequence[Mapping[str, int]] | None = None,
    verify_with: str | Sequence[str] = (),
    console: Any | None = None,
    options: Any = None,
) -> ExportResult:
    """Exports a spec, or a module built by nnx-build as it is now, to ``out``, verified, atomically.

    Args:
      model_or_spec: a spec path, spec text or :class:`~nnx_build.Spec`; or a module from
        :func:`nnx_build.build`, after any surgery (a swapped layer, LoRA, training): the
        export follows the module as it is now.
      out: the folder to create (written beside as ``.NAME.*.tmp``, renamed when complete).
      to: targets, ``"stablehlo,savedmodel,onnx"`` or a sequence (default: every target of
        :data:`~nnx_build.exporters.TARGETS`).
      weights: weights to load first: an ``.npz`` of the pure-dict state (keys
        ``"linear/kernel"``) or an ``nnx-build train`` checkpoint folder. A module is not
        changed (a copy gets them).
      force: replace an existing ``out`` (swapped in one step where the system can).
      verify: reload every artifact in a fresh process and compare with JAX.
      platforms: lowering platforms for StableHLO and SavedModel (``cpu,cuda,tpu``).
      seed: overrides the spec's seed (ignored for a module and for weights loaded from ``weights``).
      tolerance: abs and rel tolerance of floating outputs (default 1e-5 for float32).
      batch_sizes: batch sizes verified (every other named dim varies with them).
      weights_as_args: StableHLO keeps the weights as ``@main`` arguments, ``weights.npz`` beside.
      version: the SavedModel version folder (TF Serving).
      mlir_text: StableHLO writes ``NAME.mlir`` text instead of ``NAME.mlirbc`` bytecode (a portable artifact).
      dims: fixes named dims to concrete sizes in every target (``{"batch": 1}``): static
        shapes for compilers that want them; verification runs at those sizes (the other
        named dims still vary). A name no input uses is an :class:`ExportError`. A list
        (``[{"batch": 1}, {"batch": 8}]``) exports one static variant of every entry per
        item, named ``main_batch1``, ``main_batch8`` (the entry, then each fixed dim and
        its size, sorted by dim name), each verified at its own sizes.
      verify_with: further runtimes verification runs the artifacts on (``"iree"``: the
        StableHLO module compiled by IREE for CPU); see :data:`~.verify.RUNTIMES`.
      console: a rich Console for progress; ``None`` is silent.
      options: a :class:`nnx_build.pipeline.Options` (limits, budgets, plugins) for the build.

    Raises:
      OutputExistsError, ExportError, WeightsError, ConversionError, VerificationError
      (all :class:`~nnx_build.NnxBuildError`); :class:`PartialExportError` when some targets
      failed, naming those that succeeded. ``out`` is then left as it was.
    """
    from .entries import dim_variants, from_model, from_spec, is_built_module, trace_entries
    from .manifest import file_entries, new_manifest, weights_digest, weights_record, write_manifest
    from .target import ExportOptions

    targets = parse_targets(to)
    conversion = ExportOptions(_platforms(platforms), weights_as_args, version, mlir_text)
    out = Path(out)
    if (out.exists() or out.is_symlink()) and not force:
        raise OutputExistsError(f"{out} already exists; pass --force to replace it")
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} exists and is not a folder")
    if weights is not None and not Path(weights).exists():
        raise WeightsError(f"weights file {weights} does not exist")
    variants = dim_variants(dims)
    runtimes = _runtimes(verify_with, [t.name for t in targets])
    if runtimes and not verify:
        raise ExportError(f"verifying with {', '.join(runtimes)} needs verification; drop --no-verify (verify=False)")
    if verify and len(batch_sizes) < 1:
        raise ExportError("verification needs at least one batch size")

    stages = ["build", *(t.name for t in targets), *(["verify"] if verify else []), "write"]
    tmp = _make_temp_dir(out)
    try:
        with Stages(console, stages) as progress, contextlib.ExitStack() as stack:
            with progress.stage("build", "building the model") as info:
                if is_built_module(model_or_spec) or not isinstance(model_or_spec, str | os.PathLike) and callable(model_or_spec):
                    subject = from_model(model_or_spec, weights)
                else:
                    subject = from_spec(model_or_spec, seed, weights, options=options)
                entries = trace_entries(subject.model, subject.scope, variants)
                nbytes = entries[0].ff.weight_bytes()
                info["done"] = f"{_entries_text(len(entries))}, {human_bytes(nbytes)} of weights"
            # inputs drawn and JAX's outputs computed now, while the process is small (before TensorFlow's
            # import); each target's verification process starts when the target is written, beside the next conversion
            verification = _verification(tmp, entries, subject, tuple(batch_sizes), tolerance, runtimes) if verify else None
            stack.enter_context(verification or contextlib.nullcontext())
            release_memory()
            order = sorted(targets, key=lambda t: t.name in CONVERT_LAST)
            artifacts, failed = _convert(order, entries, tmp, conversion, progress, verification)
            artifacts = {t.name: artifacts[t.name] for t in targets if t.name in artifacts}
            if len(failed) == len(targets):
                raise next(iter(failed.values()))
            done = [t.name for t in targets if t.name in artifacts]
            wrecord = weights_record(weights)
            manifest = new_manifest(
                spec=subject.spec,
                seed=subject.seed,
                weights={**(wrecord or {}), "digest": weights_digest(entries[0].ff.weights)},
                targets=done,
                platforms=list(conversion.platforms),
                dims=subject.dims,
                **({"static_dims": variants[0]} if len(variants) == 1 else {"variants": variants} if variants else {}),
                entries=[e.to_json() for e in entries],
                artifacts=artifacts,
            )
            manifest["files"] = file_entries(tmp)
            manifest["verification"] = {"status": "skipped"}
            write_manifest(tmp, manifest)
            if verify:
                fixed = f" ({'; '.join(', '.join(f'{d}={n}' for d, n in v.items()) for v in variants)} fixed)" if variants else ""
                also = f", also in {', '.join(runtimes)}" if runtimes else ""
                with progress.stage("verify", f"reloading in fresh processes{also}, batch {', '.join(map(str, batch_sizes))}{fixed}") as info:
                    assert verification is not None
                    record = verification.finish(manifest)
                    # messages name the folder being written as the folder asked for
                    record["failures"] = [f.replace(str(tmp), str(out)) for f in record.get("failures", [])]
                    manifest["verification"] = record
                    if record["status"] != "passed":
                        if failed or any(s == "passed" for s in record.get("targets", {}).values()):
                            bad = [t for t, s in record.get("targets", {}).items() if s != "passed"]
                            info["failed"] = f"failed for {', '.join(bad)}"
                        else:
                            raise VerificationError(_failure_message(record))
                    else:
                        worst = max((r["max_abs_err"] for r in record["results"]), default=0.0)
                        info["done"] = f"{len(record['results'])} comparisons passed (max abs err {worst:.2g})"
                for name, status in record.get("targets", {}).items():
                    if status != "passed":
                        failed[name] = VerificationError(_failure_message(record, name))
            if failed:
                ok = [t for t in done if t not in failed]
                raise PartialExportError(failed, ok, verified=verify)
            with progress.stage("write", f"renaming into {out}") as info:
                manifest["seconds"] = dict(progress.seconds)
                write_manifest(tmp, manifest)
                _commit(tmp, out, force)
                info["done"] = str(out)
        return ExportResult(out, manifest, dict(progress.seconds))
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _convert(
    targets: Sequence[Any], entries: list[Any], tmp: Path, options: Any, progress: Stages, verification: Any = None
) -> tuple[dict[str, Any], dict[str, Exception]]:
    """Runs every target's export; a failing target is recorded and the others still run; each written one is verified."""
    from .errors import ConversionError

    artifacts: dict[str, Any] = {}
    failed: dict[str, Exception] = {}
    dtypes = [t.dtype for e in entries for t in (*e.inputs, *e.outputs)]
    for target in targets:
        try:
            with progress.stage(target.name, "converting") as info:
                bad = target.unsupported_dtypes(dtypes)
                if bad:
                    raise ConversionError(f"{target.name}: no {target.name} runtime kernel for {', '.join(bad)}")
                artifacts[target.name] = target.export(entries, tmp, options)
                info["done"] = "written"
            if verification is not None:
                verification.start(target.name, artifacts[target.name])
        except ConversionError as e:
            failed[target.name] = e
            shutil.rmtree(tmp / target.folder, ignore_errors=True)
        finally:
            release_memory()
    return artifacts, failed


def _make_temp_dir(out: Path) -> Path:
    from ..fileio import make_temp_dir

    try:
        return make_temp_dir(out)
    except OSError as e:
        raise ExportError(f"cannot write to {out.parent}: {e.strerror or e}") from e


def _commit(tmp: Path, out: Path, force: bool) -> None:
    from ..fileio import replace_dir

    try:
        replace_dir(tmp, out, force=force)
    except FileExistsError:
        raise OutputExistsError(f"{out} already exists; pass --force to replace it") from None
    except OSError as e:
        raise ExportError(f"cannot move the export into {out}: {e.strerror or e}") from e


def _verification(root: Path, entries: list[Any], subject: Any, batch_sizes: tuple[int, ...], tolerance: float | None,
                  runtimes: tuple[str, ...]) -> Any:
    """The verification of an export to ``root``: inputs drawn, JAX's outputs computed, no process started yet."""
    from .entries import integer_ranges
    from .verify import Verification

    ranges = integer_ranges(subject.model, subject.scope)
    # a static variant draws integer ids over the ranges of the entry it is a variant of
    ranges = {e.name: ranges[e.variant_of or e.name] for e in entries if (e.variant_of or e.name) in ranges}
    return Verification(
        root, [e.to_json() for e in entries], {e.name: e.ff for e in entries}, dims=subject.dims, batch_sizes=batch_sizes,
        tolerance=tolerance, int_ranges=ranges, runtimes=runtimes,
    )


def _verify(root: Path, manifest: dict[str, Any], entries: list[Any], dims: dict[str, int], ranges: Any,
            batch_sizes: tuple[int, ...], tolerance: float | None, runtimes: tuple[str, ...] = ()) -> dict[str, Any]:
    from .verify import verify_export

    return verify_export(
        root, manifest, {e.name: e.ff for e in entries}, dims=dims, batch_sizes=batch_sizes, tolerance=tolerance,
        int_ranges=_entry_ranges(entries, ranges), runtimes=runtimes,
    )


def _entry_ranges(entries: list[Any], ranges: dict[str, Any]) -> dict[str, Any]:
    # a static variant draws integer ids over the ranges of the entry it is a variant of
    return {e.name: ranges[e.variant_of or e.name] for e in entries if (e.variant_of or e.name) in ranges}


def _runtimes(value: str | Sequence[str], targets: Sequence[str]) -> tuple[str, ...]:
    """``verify_with`` as runtime names, each known, installed, and its target exported (else an :class:`ExportError`)."""
    from .verify import check_runtime

    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    for name in names:
        check_runtime(name, targets)
    return tuple(dict.fromkeys(names))


def _failure_message(record: dict[str, Any], target: str | None = None) -> str:
    from .verify import target_of

    failures = [f for f in record.get("failures", []) if target is None or target_of(f.split(" ")[0]) == target]
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    return f"verification failed: {failures[0] if failures else 'unknown reason'}{more}"


def verify_dir(
    out: str | os.PathLike[str],
    *,
    spec: Any | None = None,
    weights: str | os.PathLike[str] | None = None,
    tolerance: float | None = None,
    batch_sizes: Sequence[int] = (1, 7),
    runtimes: str | Sequence[str] = (),
    console: Any | None = None,
    options: Any = None,
) -> ExportResult:
    """Re-verifies an export folder against its spec (recorded in the manifest, or ``spec``).

    Rebuilds the model with the recorded seed and weights (the recorded checkpoint step),
    reloads every artifact in a fresh process, updates ``manifest.json``'s
    ``verification`` and raises :class:`VerificationError` on a mismatch. When the recorded
    weights changed since the export, says so (the artifacts are not compared with them).
    ``runtimes`` adds runtimes the artifacts are also run on (``"iree"``).
    """
    from .common import file_sha256
    from .entries import from_spec, integer_ranges, trace_entries
    from .manifest import read_manifest, weights_digest, write_manifest

    out = Path(out)
    manifest = read_manifest(out)
    extra = _runtimes(runtimes, manifest.get("targets", []))
    recorded = manifest.get("spec", {})
    if spec is None:
        if not recorded.get("path"):
            how = "was exported from a module" if recorded.get("source") == "module" else "records no spec file"
            raise ExportError(f"{out}/manifest.json {how}; pass the spec (and its weights) to verify against")
        spec = recorded["path"]
        if not Path(spec).is_file():
            raise ExportError(f"the spec {spec} recorded in {out}/manifest.json is gone; pass the spec")
        if recorded.get("sha256") and file_sha256(Path(spec)) != recorded["sha256"]:
            raise ExportError(f"the spec {spec} changed since the export (sha256 differs); pass the spec to verify against it")
    wrec = manifest.get("weights") or {}
    step = None
    recorded_weights = weights is None  # else the user's weights: compared as they are
    if recorded_weights and wrec.get("path"):
        weights, step = wrec["path"], wrec.get("step")
        _check_weights_file(out, wrec)
    with Stages(console, ["build", "verify"]) as progress:
        with progress.stage("build", "building the model") as info:
            subject = from_spec(spec, manifest.get("seed"), weights, step=step, options=options)
            entries = trace_entries(subject.model, subject.scope, manifest.get("variants") or manifest.get("static_dims"))
            if recorded_weights and wrec.get("digest") and weights_digest(entries[0].ff.weights) != wrec["digest"]:
                source = f"the weights {weights}" if weights is not None else f"the weights built from seed {manifest.get('seed')}"
                raise VerificationError(
                    f"weights changed since export: {source} are not the ones exported to {out} "
                    "(their digest differs); the artifacts were not compared; pass --weights with the exported weights"
                )
            info["done"] = _entries_text(len(entries))
        also = f", also in {', '.join(extra)}" if extra else ""
        with progress.stage("verify", f"reloading in fresh processes (one per target){also}") as info:
            ranges = integer_ranges(subject.model, subject.scope)
            record = _verify(out, manifest, entries, subject.dims, ranges, tuple(batch_sizes), tolerance, extra)
            info["done"] = record["status"]
    manifest["verification"] = record
    write_manifest(out, manifest)
    if record["status"] != "passed":
        raise VerificationError(_failure_message(record))
    return ExportResult(out, manifest, dict(progress.seconds))


def _check_weights_file(out: Path, wrec: dict[str, Any]) -> None:
    """The recorded weights file still exists and hashes as it did at export time."""
    from .manifest import weights_record

    path = Path(wrec["path"])
    if not path.exists():
        raise ExportError(f"the weights {path} recorded in {out}/manifest.json are gone; pass --weights")
    if not wrec.get("sha256"):
        return
    step = wrec.get("step")
    if step is not None and path.is_dir() and not (path / str(step)).is_dir():
        raise VerificationError(
            f"weights changed since export: checkpoint step {step} is no longer in {path}; "
            "the artifacts were not compared; pass --weights with the exported weights to verify them"
        )
    now = weights_record(path, step)
    if now is not None and now.get("sha256") != wrec["sha256"]:
        at = f" (step {wrec['step']})" if wrec.get("step") is not None else ""
        raise VerificationError(
            f"weights changed since export: {path}{at} no longer matches the sha256 recorded in {out}/manifest.json; "
            "the artifacts were not compared; pass --weights with the exported weights to verify them"
        )
