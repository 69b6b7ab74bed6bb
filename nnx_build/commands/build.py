"""``nnx-build build``, ``check`` and ``schema``: a spec to a summary, its abstract check, the JSON Schema."""

from __future__ import annotations

import contextlib
import gc
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from .app import app
from .options import BuildArgs, JsonFlag, SpecArg, build_options, console

__all__ = ["build_cmd", "check_cmd", "paused_gc", "schema_cmd"]


@app.command("build")
@build_options(seed=True, weights=True)
def build_cmd(spec: SpecArg, build: BuildArgs, json_out: JsonFlag = False) -> None:
    """Build SPEC eagerly, print a model summary and run one forward pass on zeros.

    Examples:

      nnx-build specs/seed/model.yaml

      nnx-build build specs/cnn.yaml --seed 1

      nnx-build build spec.yaml --weights trained.npz

      nnx-build build big.yaml --max-params 20000000000 --max-bytes 100000000000

      nnx-build build spec.yaml --plugin mypkg.nnx_layers
    """
    with paused_gc():
        from .. import pipeline
        from ..summary import forward_on_zeros, print_summary

        options = build.options()
        out = console()
        program = pipeline.compile(spec, options)
        report = pipeline.check(program, options)
        with out.status(f"building {program.spec.name} ({report.total_params:,} parameters)"):
            model = pipeline.allocate(program, options, nbytes=report.total_bytes)
            pipeline.load_weights(model, options, program)
        outputs = forward_on_zeros(model, program)
    print_summary(out, report, title=f"{type(model).__name__} built from {spec}", program=program)
    if build.weights is not None:
        out.print(f"weights: {build.weights}")
    for name, value in outputs.items():
        out.print(f"forward on zeros: {name} -> shape {tuple(value.shape)} {value.dtype}")
    if json_out:
        data = report.to_json()
        data["forward"] = {n: {"shape": list(v.shape), "dtype": str(v.dtype)} for n, v in outputs.items()}
        print(json.dumps(data))


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Python's cyclic garbage collector off while the block runs (then back as it was).

    Importing JAX and tracing a model make millions of objects and few cycles; the
    collector's passes over them are about a tenth of a build's wall time. A build is
    short, so the cycles it leaves wait for the next collection after it.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


CHECK_WEIGHTS_HELP = (
    "Also check this weights file against the model (through the spec's weights: mapping): every "
    "name, shape and dtype from the file's header; no tensor is read."
)


@app.command("check")
@build_options(weights=CHECK_WEIGHTS_HELP)
def check_cmd(
    spec: SpecArg,
    build: BuildArgs,
    optimizer: Annotated[
        str | None, typer.Option("--optimizer", help="With a mesh, also plan this optax optimizer's state (adamw, sgd, ...).")
    ] = None,
    device_memory: Annotated[
        str | None, typer.Option("--device-memory", help="With a mesh, say whether each device's share fits this (16GB, 80GiB).")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Validate SPEC abstractly (no weights allocated): schema, references, shapes, budget.

    With a mesh (--mesh or the spec's mesh:) it also plans the largest per-device share of
    the variables (and of --optimizer state) from the sharding rules alone: no device is
    needed, so a mesh of 8 is planned on a one-device machine.

    With --json the last line of stdout is one JSON object, also on failure:
    `{"ok": false, "errors": [{"file", "line", "col", "code", "message"}]}` (exit 2);
    with a mesh it holds `"per_device": {"devices", "bytes"[, "with_optimizer_bytes"]}`.

    Examples:

      nnx-build check specs/zoo/gpt2_xl.yaml

      nnx-build check spec.yaml --json | tail -1 | jq .params

      nnx-build check huge.yaml --limit max_modules=50000 --max-bytes 4000000000000

      nnx-build check specs/zoo/llama_7b.yaml --mesh fsdp=8 --optimizer adamw --device-memory 16GB

      nnx-build check specs/hf/all_minilm_l6_v2.yaml --weights model.safetensors
    """
    from .. import pipeline
    from ..errors import NnxBuildError
    from ..summary import print_summary

    plan, weights = None, build.weights
    try:
        options = build.options()
        memory = parse_bytes(device_memory, "--device-memory") if device_memory is not None else None
        program = pipeline.compile(spec, options)
        report = pipeline.check(program, options, optimizer=optimizer)
        pipeline.check_sections(program)
        if weights is not None:
            from ..weights import check_weights

            plan = check_weights(program, weights)
    except NnxBuildError as e:
        if json_out:
            print(json.dumps({"ok": False, "errors": _error_records(e, spec)}))
        raise
    fits = _fits(report.per_device, memory)
    summary = None
    if plan is not None:
        tensors = len({u.tensor for u in plan.uses})
        summary = {"file": str(weights), "tensors": tensors, "ignored": len(plan.ignored), "bytes": plan.nbytes}
    if json_out:
        data = {"ok": True, **report.to_json(), **({"weights": summary} if summary else {})}
        if fits is not None:
            data["per_device"]["fits"] = fits
        print(json.dumps(data))
        return
    out = console()
    print_summary(out, report, title=f"{spec}: ok", program=program)
    if report.per_device is not None:
        out.print(_per_device_line(report.per_device, optimizer, memory, fits))
    if summary is not None:
        out.print(
            f"weights {weights}: {summary['tensors']} tensors ({summary['bytes']:,} bytes) fill every variable, "
            f"{summary['ignored']} ignored; checked from the header, no tensor read"
        )


def _fits(per_device: dict[str, Any] | None, memory: int | None) -> bool | None:
    if per_device is None or memory is None:
        return None
    return per_device.get("with_optimizer_bytes", per_device["bytes"]) <= memory


def _per_device_line(pd: dict[str, Any], optimizer: str | None, memory: int | None, fits: bool | None) -> str:
    from ..builder.abstract import human_bytes

    text = f"per device ({pd['devices']} devices, planned): {human_bytes(pd['bytes'])} of variables"
    if "with_optimizer_bytes" in pd:
        text += f", {human_bytes(pd['with_optimizer_bytes'])} with {optimizer} state"
    if fits is not None:
        text += f"; {'fits' if fits else 'does NOT fit'} {human_bytes(memory or 0)} per device"
    return text


def parse_bytes(text: str, option: str) -> int:
    """``16GB`` / ``16GiB`` / ``500MB`` / ``1000000`` -> bytes (GB and GiB both 1024**3, as the summary prints)."""
    import re

    from ..errors import NnxBuildError

    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B?|B)?\s*", text, re.IGNORECASE)
    if not m:
        raise NnxBuildError(f"{option} takes a size such as 16GB, 80GiB or 500MB; received {text!r}")
    unit = (m.group(2) or "B").upper().replace("I", "").rstrip("B") or "B"
    scale = {"B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}[unit]
    return int(float(m.group(1)) * scale)


def _error_records(exc: BaseException, spec: Path) -> list[dict[str, Any]]:
    from ..errors import SpecErrors

    if isinstance(exc, SpecErrors):
        return [
            {"file": e.loc.file, "line": e.loc.line, "col": e.loc.col, "code": e.code, "message": e.message}
            for e in exc.errors
        ]
    code = "out-of-memory" if type(exc).__name__ == "OutOfMemoryError" else "error"
    return [{"file": str(spec), "line": None, "col": None, "code": code, "message": str(exc)}]


@app.command("schema")
def schema_cmd(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here (a file) instead of stdout.")] = None,
) -> None:
    """Write the JSON Schema of specs (for editors: yaml-language-server, VS Code).

    Examples:

      nnx-build schema --out schema/nnx-spec.schema.json
    """
    from ..errors import NnxBuildError
    from ..jsonschema import spec_json_schema

    if out is not None and out.is_dir():
        raise NnxBuildError(f"--out {out} is a folder; give a file name, e.g. --out {out / 'nnx-spec.schema.json'}")
    text = json.dumps(spec_json_schema(), indent=2, sort_keys=False) + "\n"
    if out is None:
        sys.stdout.write(text)
        return
    from ..fileio import atomic_write_text

    atomic_write_text(out, text)
    console().print(f"wrote {out}")
