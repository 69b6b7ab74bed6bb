"""StableHLO: a self-contained ``.mlir`` text module and the ``jax.export`` artifact.

Per entry point ``NAME`` (``main`` or a spec method), in ``DIR/stablehlo/``:

* ``NAME.mlir``: StableHLO text whose ``@main`` takes only the model inputs (weights are
  constants), named dims dynamic (``tensor<?x2xf32>``) unless ``dims`` fixes them; JAX's
  ``shape_assertion`` custom calls are removed, so any StableHLO consumer can compile it.
  Lowered for the first platform; ``NAME.<platform>.mlir`` for each further one.
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

__all__ = ["CONSTANT_LIMIT", "TARGET", "export_stablehlo", "strip_shape_assertions"]

#: weights at least this large cannot be constants of a serialized module
CONSTANT_LIMIT = 2**31 - 2**26


def strip_shape_assertions(text: str) -> str:
    """Removes JAX's ``shape_assertion`` custom calls (only JAX's runtime knows them)."""
    from jax._src.interpreters import mlir as jmlir
    from jax._src.lib.mlir import ir

    with jmlir.make_ir_context(), ir.Location.unknown():
        module = ir.Module.parse(text)
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
        return module.operation.get_asm(enable_debug_info=False, large_elements_limit=None)


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
    entries: list[Entry], out_dir: Path, *, platforms: tuple[str, ...] = ("cpu",), weights_as_args: bool = False
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
    section: dict[str, Any] = {"platforms": list(platforms), "weights_as_args": weights_as_args, "entries": {}}
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
                path = out_dir / (f"{entry.name}.mlir" if i == 0 else f"{entry.name}.{platform}.mlir")
                path.write_text(strip_shape_assertions(single.mlir_module()), encoding="utf-8")
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
    section = export_stablehlo(entries, root / "stablehlo", platforms=options.platforms, weights_as_args=options.weights_as_args)
    return {"dir": "stablehlo", **section}


def _load(root: Path, section: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Run]:
    """The ``.jax_export`` artifact, and the ``.mlir`` text compiled by XLA for this backend."""
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
            module = ir.Module.parse((base / mlir_name).read_text(encoding="utf-8"))
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
    summary="StableHLO text (.mlir, weights as constants) and the jax.export artifact",
    folder="stablehlo",
    layout="stablehlo/<entry>.mlir  <entry>.jax_export  [weights.npz]",
    export=_export,
    load=_load,
)
