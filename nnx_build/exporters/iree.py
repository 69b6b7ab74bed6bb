"""IREE as a second compiler in verification: an export's StableHLO module compiled for CPU.

``nnx-build verify DIR --runtime iree`` (``export ... --verify-with iree``) compiles each
entry's ``stablehlo/NAME.mlirbc`` (the ``cpu`` lowering: a StableHLO portable artifact, or
``NAME.mlir`` text in an export made with ``--mlir-text``) with IREE's ``llvm-cpu`` backend in
the verification process, runs it with IREE's runtime (``local-task``) on the same inputs
as the other targets, and compares with JAX: the run ``stablehlo-iree``. IREE is the
optional extra ``iree`` (``pip install 'nnx-build[iree]'``), imported here only.

IREE refuses some modules whose shapes are dynamic (a depthwise ``stablehlo.convolution``
with a dynamic batch); the error then says so and gives the ``--dims`` command that
exports static shapes.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .target import Run

__all__ = ["compile_mlir", "load", "static_command"]

#: IREE's CPU backend; the code is compiled for the CPU it runs on (verification compiles and runs in one process)
COMPILE_FLAGS = ("--iree-llvmcpu-target-cpu=host",)


def static_command(manifest: Mapping[str, Any], root: Path, dynamic: list[str]) -> str:
    """The ``nnx-build export`` command that exports ``root``'s spec with the ``dynamic`` dims fixed."""
    spec = (manifest.get("spec") or {}).get("path") or "SPEC"
    example = manifest.get("dims") or {}
    sizes = ",".join(f"{d}={1 if d == 'batch' else int(example.get(d, 1))}" for d in dynamic)
    out = f"{root.as_posix().rstrip('/')}-static"
    return shlex.join(["nnx-build", "export", str(spec), "--dims", sizes, "--to", "stablehlo", "--verify-with", "iree", "--out", out])


def _dynamic_dims(entry: Mapping[str, Any]) -> list[str]:
    names = [d for i in (*entry["inputs"], *entry["outputs"]) for d in i["shape"] if isinstance(d, str)]
    return sorted(dict.fromkeys(names), key=lambda d: (d != "batch", d))


def _diagnostic(error: Exception) -> str:
    """The first ``error:`` of IREE's diagnostics, without the operation's text, and the first dynamic tensor type in it."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    found = next((ln for ln in lines if "error:" in ln), lines[0] if lines else type(error).__name__)
    text = found.split("error:", 1)[-1].strip() if "error:" in found else found
    head = re.split(r":\s+%|\s+loc\(", text, maxsplit=1)[0].strip()
    dynamic = re.search(r"tensor<[^>]*\?[^>]*>", text)
    return f"{head} (on {dynamic.group(0)})" if dynamic and dynamic.group(0) not in head else head


def compile_mlir(path: Path, *, root: Path, entry: Mapping[str, Any]) -> bytes:
    """``path`` (``entry``'s StableHLO bytecode or text in the export ``root``) compiled by IREE for ``llvm-cpu``: a VM flatbuffer."""
    import iree.compiler as ic

    try:
        return bytes(ic.compile_file(str(path), target_backends=["llvm-cpu"], input_type="stablehlo", extra_args=list(COMPILE_FLAGS)))
    except ic.CompilerToolError as e:
        why = f"IREE (llvm-cpu) cannot compile {path.parent.name}/{path.name}: {_diagnostic(e)}"
        dynamic = _dynamic_dims(entry)
        if dynamic:
            manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
            why += (
                f"; IREE refuses some operations on dynamic shapes ({', '.join(dynamic)} left dynamic here): "
                f"export static shapes with --dims: {static_command(manifest, root, dynamic)}"
            )
        raise RuntimeError(why) from None


def load(root: Path, section: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Run]:
    """The entry's ``.mlirbc`` or ``.mlir`` (cpu lowering) compiled by IREE; the run ``iree`` (verification names it ``stablehlo-iree``)."""
    import iree.runtime as ir
    import numpy as np

    base = root / section["dir"]
    files = section["entries"][entry["name"]]
    mlir_name = files["mlir"].get("cpu")
    if mlir_name is None:
        lowered = ", ".join(files["mlir"])
        raise RuntimeError(f"IREE (llvm-cpu) compiles the cpu lowering; the StableHLO was lowered for {lowered} only: export with --platforms cpu,{lowered}")
    vmfb = compile_mlir(base / mlir_name, root=root, entry=entry)

    config = ir.Config("local-task")
    context = ir.SystemContext(config=config)
    vm_module = ir.VmModule.copy_buffer(context.instance, vmfb)
    context.add_vm_module(vm_module)
    function = getattr(context.modules, vm_module.name)["main"]
    weights: dict[str, Any] = {}
    if section.get("weights_as_args"):
        with np.load(base / section["weights"]) as w:
            weights = {k: ir.asdevicearray(config.device, w[k]) for k in section["weight_order"]}
    inputs = [i["name"] for i in entry["inputs"]]
    # @main's arguments: the weights it reads (sorted by key), then the inputs it reads
    order = files.get("main_arg_names") or [*weights, *inputs]

    def call(*xs: Any) -> tuple[Any, ...]:
        named = {**weights, **dict(zip(inputs, xs, strict=True))}
        out = function(*(named[n] for n in order))
        return tuple(out) if isinstance(out, tuple | list) else (out,)

    def prepare(xs: list[Any]) -> list[Any]:
        return [ir.asdevicearray(config.device, np.ascontiguousarray(x)) for x in xs]

    return {"iree": Run(call, prepare=prepare, block=lambda out: tuple(np.asarray(o) for o in out))}
