"""TF SavedModel through ``jax2tf`` (native serialization), in TF Serving layout.

``DIR/savedmodel/<version>/`` holds a ``tf.Module`` whose weights are ``tf.Variable``s
(saved in ``variables/``, so models over 2 GB work: the converted function takes the
weights as arguments and the ``tf.function`` passes the variables in). Signatures:
``serving_default`` for ``__call__`` and one per spec method, inputs and outputs named
as in the spec, named dims unknown (``None``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .common import Entry, first_line, jnp_dtype, poly_shape
from .errors import ConversionError
from .target import ExportOptions, Run, Target

__all__ = ["TARGET", "export_savedmodel", "import_tensorflow", "shared_tensor"]


def import_tensorflow() -> Any:
    """Imports TensorFlow quietly (C++ logs off unless the user set the level).

    TensorFlow 2.21 writes its oneDNN and absl start-up lines to the stderr file
    descriptor whatever ``TF_CPP_MIN_LOG_LEVEL`` says; they are dropped during the
    import unless that variable is ``0`` (all logs wanted). Import errors still raise.
    """
    import sys

    quiet = os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "0" and "tensorflow" not in sys.modules
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not quiet:
        import tensorflow as tf

        return tf
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return tf


def shared_tensor(tf: Any, array: Any) -> Any:
    """A TF tensor of ``array`` (a JAX array or numpy), sharing its memory where it can.

    A JAX array on the CPU goes through DLPack: the tensor is a view of the JAX buffer, so
    a ``tf.Variable`` made from it (which adopts its initial value's buffer) holds no second
    copy of the weight. Anything else (an array on an accelerator or sharded over devices,
    a dtype DLPack does not carry) is copied through numpy, as before.
    """
    import numpy as np

    if _on_one_cpu(array):
        try:
            return tf.experimental.dlpack.from_dlpack(array.__dlpack__())
        except Exception:  # noqa: BLE001  (TF or JAX refuses this dtype or layout: copy instead)
            pass
    return tf.constant(np.asarray(array))


def _on_one_cpu(array: Any) -> bool:
    devices = getattr(array, "devices", None)
    if not callable(devices) or not hasattr(array, "__dlpack__"):
        return False
    found = devices()
    return len(found) == 1 and next(iter(found)).platform == "cpu"


def _signature_fn(tf: Any, entry: Entry, module: Any, keys: list[str], platforms: tuple[str, ...]) -> Any:
    from jax.experimental import jax2tf

    converted = jax2tf.convert(
        entry.ff.pure,
        polymorphic_shapes=[None, *(poly_shape(i) for i in entry.inputs)],
        native_serialization_platforms=platforms,
        with_gradient=False,
    )
    out_names = [o.name for o in entry.outputs]

    def serve(*inputs: Any) -> dict[str, Any]:
        weights = dict(zip(keys, module.weights, strict=True))
        out = converted(weights, *inputs)
        outs = out if isinstance(out, tuple | list) else (out,)
        return {name: tf.identity(v) for name, v in zip(out_names, outs, strict=True)}

    spec = [
        tf.TensorSpec([None if isinstance(d, str) else d for d in i.shape], tf.as_dtype(jnp_dtype(i.dtype)), name=i.name)
        for i in entry.inputs
    ]
    return tf.function(serve, input_signature=spec, autograph=False)


def export_savedmodel(
    entries: list[Entry], out_dir: Path, *, version: int = 1, platforms: tuple[str, ...] = ("cpu",)
) -> dict[str, Any]:
    """Writes ``out_dir/<version>/`` and returns the manifest section."""
    tf = import_tensorflow()
    path = out_dir / str(version)
    weights = entries[0].ff.weights
    keys = sorted(weights)
    module = tf.Module()
    # a list keeps every variable tracked (checkpointed under variables/), in key order
    module.weights = [tf.Variable(shared_tensor(tf, weights[k]), trainable=False, name=k.replace("/", ".")) for k in keys]
    del weights
    signatures: dict[str, Any] = {}
    for entry in entries:
        try:
            fn = _signature_fn(tf, entry, module, keys, platforms)
            setattr(module, entry.name, fn)
            signatures[entry.signature] = fn.get_concrete_function()
        except Exception as e:
            raise ConversionError(f"savedmodel: jax2tf cannot convert entry '{entry.name}': {first_line(e)}") from e
    try:
        options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
        tf.saved_model.save(module, str(path), signatures=signatures, options=options)
    except Exception as e:
        raise ConversionError(f"savedmodel: cannot save: {first_line(e)}") from e
    return {
        "dir": f"{out_dir.name}/{version}",
        "version": version,
        "platforms": list(platforms),
        "signatures": {e.name: e.signature for e in entries},
        "variables": keys,
    }


def _export(entries: list[Entry], root: Path, options: ExportOptions) -> dict[str, Any]:
    return export_savedmodel(entries, root / "savedmodel", version=options.version, platforms=options.platforms)


_LOADED: dict[str, Any] = {}


def _load(root: Path, section: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Run]:
    """The entry's signature of ``tf.saved_model.load`` (loaded once per folder)."""
    tf = import_tensorflow()
    path = str(root / section["dir"])
    if path not in _LOADED:
        _LOADED.clear()  # one SavedModel at a time
        _LOADED[path] = tf.saved_model.load(path)
    sig = _LOADED[path].signatures[section["signatures"][entry["name"]]]
    in_names = [i["name"] for i in entry["inputs"]]
    out_names = [o["name"] for o in entry["outputs"]]

    def call(*feeds: Any) -> tuple[Any, ...]:
        outs = sig(**dict(zip(in_names, feeds, strict=True)))
        return tuple(outs[n] for n in out_names)

    return {"savedmodel": Run(call, prepare=lambda xs: [tf.constant(x) for x in xs])}


TARGET = Target(
    name="savedmodel",
    summary="TF SavedModel in TF Serving layout (jax2tf, weights as variables)",
    folder="savedmodel",
    layout="savedmodel/<version>/saved_model.pb  variables/",
    export=_export,
    load=_load,
)
