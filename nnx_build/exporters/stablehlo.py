"""StableHLO: a self-contained module (``.mlirbc`` bytecode, or ``.mlir`` text) and the ``jax.export`` artifact.

Per entry point ``NAME`` (``main`` or a spec method), in ``DIR/stablehlo/``:

* ``NAME.mlirbc``: a StableHLO portable artifact (versioned VHLO MLIR bytecode, the format
  ``jax.export`` serializes and StableHLO compilers such as IREE read; the manifest records
  ``mlir_format: bytecode`` and its ``stablehlo_version``) whose ``@main`` takes only the
  model inputs (weights are constants, stored as raw bytes), named dims dynamic
  (``tensor<?x2xf32>``) unless ``dims`` fixes them; JAX's ``shape_assertion`` custom calls
  are removed, so any StableHLO consumer can compile it. Lowered for the first platform;
  ``NAME.<platform>.mlirbc`` for each further one. With ``mlir_text`` (``--mlir-text``) the
  same module is written as StableHLO text instead, ``NAME.mlir`` (``mlir_format: text``;
  every constant written out in hex: about twice the weights' size).
* ``NAME.jax_export``: ``jax.export`` serialized (all platforms, shape checks kept);
  reload with ``jax.export.deserialize(open(p, "rb").read()).call(x)``.

With ``weights_as_args`` the weights stay arguments (``@main(weights..., inputs...)``,
weights first in sorted key order) and ``weights.npz`` is written beside: for models too
large for constants. ``@main`` takes the arguments the manifest lists in
``main_arg_names``: with static shapes an entry drops the weights it does not read. The serialized artifact is then called as ``.call(weights, x)``.

A model built on a mesh (``export --mesh``) exported with ``weights_as_args`` keeps its
shardings: the artifact runs on that many devices (``nr_devices`` and ``mesh`` in the
manifest), each weight argument split as in the sharded build, inputs replicated. With
weights as constants the weights are gathered: a single-device artifact.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .common import Entry, first_line, symbolic_args
from .errors import ConversionError
from .target import ExportOptions, Run, Target

__all__ = [
    "BYTECODE_MAGIC",
    "CONSTANT_LIMIT",
    "MLIR_FORMATS",
    "TARGET",
    "export_stablehlo",
    "module_file",
    "portable_version",
    "read_module",
    "strip_shape_assertions",
    "target_version",
]

#: weights at least this large cannot be constants of a serialized module
CONSTANT_LIMIT = 2**31 - 2**26


#: the formats of ``NAME.mlirbc`` / ``NAME.mlir`` (the manifest's ``mlir_format``; an export without one is ``text``)
MLIR_FORMATS = {"bytecode": ".mlirbc", "text": ".mlir"}
#: MLIR bytecode files begin with these bytes; a StableHLO portable artifact's producer then reads ``StableHLO_v<version>``
BYTECODE_MAGIC = b"ML\xefR"
PORTABLE_PRODUCER = b"StableHLO_v"


def strip_shape_assertions(module: Any) -> int:
    """Removes JAX's ``shape_assertion`` custom calls (only JAX's runtime knows them) from ``module`` (an ``ir.Module``); returns how many."""
    from jax._src.lib.mlir import ir

    dead: list[Any] = []

    def walk(op: Any) -> None:
        for region in op.regions:
            for block in region.blocks:
                for o in block.operations:
                    if o.operation.name == "stablehlo.custom_call" and "call_target_name" in o.attributes:
                        if ir.StringAttr(o.attributes["call_target_name"]).value == "shape_assertion":
                            dead.append(o)
                    walk(o.operation)

    walk(module.operation)
    for o in dead:
        o.operation.erase()
    return len(dead)


def portable_version(data: bytes) -> str | None:
    """The StableHLO version of a portable artifact (versioned VHLO bytecode), from its header; None for anything else."""
    if not data.startswith(BYTECODE_MAGIC) or len(data) < 6:
        return None
    # the bytecode version is a prefix varint: its first byte's trailing zeros count the bytes that follow it
    first = data[4]
    extra = 8 if first == 0 else (first & -first).bit_length() - 1
    start = 5 + extra
    end = data.find(b"\0", start)
    producer = data[start:end] if end >= 0 else b""
    if not producer.startswith(PORTABLE_PRODUCER):
        return None
    return producer[len(PORTABLE_PRODUCER):].decode("ascii", "replace")


def target_version() -> str:
    """The StableHLO version ``.mlirbc`` files are written for: the one ``jax.export`` writes (at least 4 weeks old)."""
    from jax.extend.mlir.dialects import stablehlo

    return str(stablehlo.get_version_from_compatibility_requirement(stablehlo.StablehloCompatibilityRequirement.WEEK_4))


def module_file(serialized: bytes, mlir_format: str, version: str) -> bytes:
    """A ``jax.export`` module (``mlir_module_serialized``) without shape assertions, as ``mlir_format`` (``bytecode``: a
    StableHLO portable artifact for ``version``; ``text``: StableHLO text with every constant written out)."""
    from jax._src.interpreters import mlir as jmlir
    from jax.extend import mlir as jex
    from jax.extend.mlir import ir, passmanager

    with jmlir.make_ir_context(), ir.Location.unknown():
        module = jex.deserialize_portable_artifact(serialized)
        strip_shape_assertions(module)
        # no source locations (the tracing process's file paths) in either format
        passmanager.PassManager.parse("builtin.module(strip-debuginfo)").run(module.operation)
        if mlir_format == "text":
            return str(module.operation.get_asm(enable_debug_info=False, large_elements_limit=None)).encode("utf-8")
        # mixed serialization keeps Shardy's ops (a mesh export) as jax.export does; a module without them is unchanged
        return bytes(jex.serialize_portable_artifact(module, version, True))


def read_module(path: Path, mlir_format: str) -> Any:
    """The module of a ``.mlirbc`` (refused unless a StableHLO portable artifact) or ``.mlir`` text, in the current ``ir`` context."""
    from jax.extend import mlir as jex
    from jax.extend.mlir import ir

    data = path.read_bytes()
    if mlir_format == "bytecode":
        if portable_version(data) is None:
            what = "MLIR bytecode of another producer" if data.startswith(BYTECODE_MAGIC) else "not MLIR bytecode"
            raise RuntimeError(f"{path.name}: not a StableHLO portable artifact ({what}); the manifest records mlir_format 'bytecode'")
        return jex.deserialize_portable_artifact(data)
    if mlir_format == "text":
        if data.startswith(BYTECODE_MAGIC):
            raise RuntimeError(f"{path.name}: MLIR bytecode where the manifest records mlir_format 'text'")
        return ir.Module.parse(data.decode("utf-8"))
    raise RuntimeError(f"{path.name}: unknown mlir_format '{mlir_format}' (this nnx-build reads {', '.join(MLIR_FORMATS)})")


def _weights_mesh(weights: Mapping[str, Any]) -> Any:
    """The mesh the weights are sharded over (a sharded build), or None."""
    import jax

    for v in weights.values():
        sharding = getattr(v, "sharding", None)
        if isinstance(sharding, jax.sharding.NamedSharding) and sharding.mesh.size > 1:
            return sharding.mesh
    return None


def _exported(entry: Entry, platforms: tuple[str, ...], weights_as_args: bool) -> Any:
    import jax
    from jax import export
    from jax.sharding import NamedSharding, PartitionSpec

    args = symbolic_args(entry.inputs)
    if weights_as_args:
        wspec = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in entry.ff.weights.items()}
        mesh = _weights_mesh(entry.ff.weights)
        if mesh is None:
            return export.export(jax.jit(entry.ff.pure), platforms=platforms)(wspec, *args)
        weight_shardings = {k: v.sharding for k, v in entry.ff.weights.items()}
        replicated = NamedSharding(mesh, PartitionSpec())
        jitted = jax.jit(entry.ff.pure, in_shardings=(weight_shardings, *[replicated] * len(args)))
        return export.export(jitted, platforms=platforms)(wspec, *args)
    return export.export(jax.jit(entry.ff.closed()), platforms=platforms)(*args)


def export_stablehlo(
    entries: list[Entry], out_dir: Path, *, platforms: tuple[str, ...] = ("cpu",), weights_as_args: bool = False, mlir_text: bool = False
) -> dict[str, Any]:
    """Writes the StableHLO artifacts of every entry; returns the manifest section."""
    import numpy as np

    nbytes = entries[0].ff.weight_bytes() if entries else 0
    if nbytes >= CONSTANT_LIMIT and not weights_as_args:
        raise ConversionError(
            f"stablehlo: the weights take {nbytes / 2**30:.1f} GiB, too large to bake in as constants "
            "(serialized modules stop at 2 GiB); pass --weights-as-args to keep them in weights.npz"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    mlir_format = "text" if mlir_text else "bytecode"
    section: dict[str, Any] = {"platforms": list(platforms), "weights_as_args": weights_as_args, "mlir_format": mlir_format, "entries": {}}
    version = target_version()
    if not mlir_text:
        section["stablehlo_version"] = version
    suffix = MLIR_FORMATS[mlir_format]
    mesh = _weights_mesh(entries[0].ff.weights) if entries else None
    if mesh is not None:
        # the mesh the weights were built on; with weights as constants they are gathered
        section["mesh"] = {str(k): int(v) for k, v in mesh.shape.items()}
    for entry in entries:
        try:
            exp = _exported(entry, platforms, weights_as_args)
            files: dict[str, Any] = {}
            ser = out_dir / f"{entry.name}.jax_export"
            ser.write_bytes(exp.serialize())
            files["serialized"] = ser.name
            mlirs = {}
            for i, platform in enumerate(platforms):
                single = exp if len(platforms) == 1 else _exported(entry, (platform,), weights_as_args)
                path = out_dir / (f"{entry.name}{suffix}" if i == 0 else f"{entry.name}.{platform}{suffix}")
                path.write_bytes(module_file(single.mlir_module_serialized, mlir_format, version))
                mlirs[platform] = path.name
            files["mlir"] = mlirs
            # the arguments @main kept: with static shapes jax.jit drops those an entry does not read (a method's unused weights)
            names = [*(sorted(entry.ff.weights) if weights_as_args else []), *(i.name for i in entry.inputs)]
            files["main_args"] = len(exp.module_kept_var_idx)
            files["main_arg_names"] = [names[i] for i in sorted(exp.module_kept_var_idx)]
            section["nr_devices"] = exp.nr_devices
        except ConversionError:
            raise
        except Exception as e:
            raise ConversionError(f"stablehlo: jax.export cannot export entry '{entry.name}': {first_line(e)}") from e
        section["entries"][entry.name] = files
    if weights_as_args:
        weights = entries[0].ff.weights
        np.savez(out_dir / "weights.npz", **{k: np.asarray(v) for k, v in weights.items()})
        section["weights"] = "weights.npz"
        section["weight_order"] = sorted(weights)
    return section


def _export(entries: list[Entry], root: Path, options: ExportOptions) -> dict[str, Any]:
    section = export_stablehlo(
        entries, root / "stablehlo", platforms=options.platforms, weights_as_args=options.weights_as_args, mlir_text=options.mlir_text
    )
    return {"dir": "stablehlo", **section}


def _load(root: Path, section: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Run]:
    """The ``.jax_export`` artifact, and the ``.mlirbc`` (or ``.mlir`` text) module compiled by XLA for this backend."""
    import dataclasses

    import jax
    import numpy as np
    from jax import export
    from jax._src.interpreters import mlir as jmlir
    from jax._src.lib.mlir import ir

    base = root / section["dir"]
    weights: tuple[Any, ...] = ()
    if section.get("weights_as_args"):
        with np.load(base / section["weights"]) as w:
            weights = ({k: w[k] for k in w.files},)
    files = section["entries"][entry["name"]]
    exp = export.deserialize(bytearray((base / files["serialized"]).read_bytes()))
    exps = {"stablehlo": exp}
    platform = jax.default_backend()
    mlir_name = files["mlir"].get(platform)
    if mlir_name is not None:
        with jmlir.make_ir_context(), ir.Location.unknown():
            module = read_module(base / mlir_name, section.get("mlir_format", "text"))
            main = next(op for op in module.body.operations if ir.StringAttr(op.attributes["sym_name"]).value == "main")
            nargs = len(main.regions[0].blocks[0].arguments)
            if nargs != files["main_args"]:
                raise RuntimeError(f"{mlir_name}: @main takes {nargs} arguments, expected {files['main_args']}")
            code = jmlir.module_to_bytecode(module)
        exps["stablehlo-mlir"] = dataclasses.replace(exp, mlir_module_serialized=code, platforms=(platform,))
    n = int(section.get("nr_devices", 1))
    if n > 1 and weights:
        # a sharded artifact runs on a mesh of the size it was exported for
        if jax.device_count() < n:
            raise RuntimeError(
                f"the artifact was exported for {n} devices, {jax.device_count()} are present; "
                f"simulate them on CPU with XLA_FLAGS=--xla_force_host_platform_device_count={n}"
            )
        axes = section.get("mesh") or {"devices": n}
        mesh = jax.make_mesh(
            tuple(axes.values()), tuple(axes), devices=jax.devices()[:n],
            axis_types=(jax.sharding.AxisType.Auto,) * len(axes),
        )
        shardings = exp.in_shardings_jax(mesh)
        device_weights = (jax.device_put(weights[0], shardings[0]),)
        inputs_sharding = shardings[1:]
    else:
        device_weights = jax.device_put(weights)
        inputs_sharding = None

    def run(e: Any) -> Run:
        fn = jax.jit(e.call)

        def call(*xs: Any) -> tuple[Any, ...]:
            out = fn(*device_weights, *xs)
            return tuple(out) if isinstance(out, tuple | list) else (out,)

        def prepare(xs: Any) -> list[Any]:
            if inputs_sharding is None:
                return [jax.device_put(x) for x in xs]
            return [jax.device_put(x, s) for x, s in zip(xs, inputs_sharding, strict=False)]

        return Run(call, prepare=prepare, block=jax.block_until_ready)

    return {name: run(e) for name, e in exps.items()}


TARGET = Target(
    name="stablehlo",
    summary="StableHLO portable bytecode (.mlirbc, weights as constants; .mlir text with --mlir-text) and the jax.export artifact",
    folder="stablehlo",
    layout="stablehlo/<entry>.mlirbc (or .mlir)  <entry>.jax_export  [weights.npz]",
    export=_export,
    load=_load,
)
