"""ONNX through ``jax2onnx``, named dims dynamic (``dim_param``), weights as initializers.

One file per entry point: ``DIR/onnx/NAME.onnx`` (``main`` or a spec method); inputs and
outputs carry the spec's names. Weights of 1 MiB or more are external data in ``NAME.onnx.data`` beside,
written tensor by tensor from the converter's model (no serialised copy of them all in memory).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..logs import quiet_logger
from .common import Entry, first_line, release_memory, symbolic_args
from .dtypes import ort_feeds, ort_outputs
from .errors import ConversionError
from .onnx_fixes import conversion_fixes
from .target import ExportOptions, Run, Target

__all__ = ["DEFAULT_OPSET", "TARGET", "export_onnx"]

DEFAULT_OPSET = 23

_PRIMITIVE = re.compile(r"(?:primitive|plugin|handler)[^'\"`]*['\"`]([\w.\-]+)['\"`]", re.IGNORECASE)


def _explain(entry: Entry, e: BaseException) -> str:
    text = str(e)
    m = _PRIMITIVE.search(text)
    if m is not None or "NotImplementedError" in type(e).__name__ or isinstance(e, NotImplementedError):
        what = f"primitive '{m.group(1)}'" if m else "a primitive"
        return (
            f"onnx: jax2onnx cannot convert {what} used by entry '{entry.name}' ({first_line(e)}); "
            "export the other targets with --to stablehlo,savedmodel"
        )
    return f"onnx: jax2onnx cannot convert entry '{entry.name}': {first_line(e)}"



def pruned(fn: Any, args: list[Any]) -> Any:
    """``fn`` as its dead-code-eliminated jaxpr, traced once at ``args`` (symbolic shapes).

    Eval mode leaves RNG state unused, but it is still threaded through ``scan`` carries
    (``nnx.RNN``) as typed-key constants, which ONNX cannot hold; DCE drops them.
    """
    import jax
    from jax._src import core
    from jax._src.interpreters import partial_eval as pe

    closed = jax.make_jaxpr(fn)(*args)
    jaxpr = pe.convert_constvars_jaxpr(closed.jaxpr)
    jaxpr, used = pe.dce_jaxpr(jaxpr, [True] * len(jaxpr.outvars))
    n = len(closed.consts)
    consts = [c for c, u in zip(closed.consts, used[:n], strict=True) if u]
    used_args = used[n:]
    single = not isinstance(jax.eval_shape(fn, *args), tuple | list)

    def forward(*xs: Any) -> Any:
        out = core.eval_jaxpr(jaxpr, [], *consts, *(x for x, u in zip(xs, used_args, strict=True) if u))
        return out[0] if single and len(out) == 1 else tuple(out)

    forward.__name__ = getattr(fn, "__name__", "forward")
    return forward


_TYPE_ERROR = re.compile(r"Optype \((\w+)\) bound to different types \((tensor\(\w+\)) and (tensor\(\w+\))")
_NO_KERNEL = re.compile(r"Could not find an implementation for (\w+)\(")
_ELEM_NAMES = {10: "float16", 16: "bfloat16"}


def _low_precision(path: Path) -> list[str]:
    """The low-precision float dtypes (``float16``, ``bfloat16``) the model's tensors use."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    types = {t.data_type for t in graph.initializer}
    types |= {v.type.tensor_type.elem_type for v in (*graph.input, *graph.output, *graph.value_info)}
    return [name for code, name in _ELEM_NAMES.items() if code in types]


def _check_runtime(entry: Entry, path: Path) -> None:
    """Loads the converted file in onnxruntime (CPU) before the export goes on; explains a refusal.

    Few CPU kernels exist for ``bfloat16`` (and some for ``float16``), and the converter
    can mix dtypes in one node; either way the file would be useless, so the export stops
    with the fix instead of writing it.
    """
    try:
        import onnxruntime as ort
    except ImportError:  # the verification (which needs it) says so
        return
    options = ort.SessionOptions()
    options.log_severity_level = 3
    # kernels and types are checked at any level; the layout passes of the default level
    # copy every weight once more (ResNet-50: 2.6x the weights in this process, basic 1.3x)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    # kernels are found before their weights are prepacked: without prepacking the external
    # weights are only mapped, never read (ViT-B/16: 344 MB less in this process, 11 MB in all)
    options.add_session_config_entry("session.disable_prepacking", "1")
    try:
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001  (onnxruntime raises its own untyped errors)
        text = str(e)
        low = _low_precision(path)
        dtype = " and ".join(low) if low else None
        fix = (
            "export with a float32 `dtype` in the spec for ONNX, or the other targets only with --to stablehlo,savedmodel"
            if dtype else "export the other targets with --to stablehlo,savedmodel"
        )
        if (m := _NO_KERNEL.search(text)) is not None:
            what = f"onnxruntime has no CPU kernel for {m.group(1)}" + (f" in {dtype}" if dtype else "")
        elif (m := _TYPE_ERROR.search(text)) is not None:
            what = f"jax2onnx mixes {m.group(2)} and {m.group(3)} in one {m.group(1)} node" + (f" when converting {dtype}" if dtype else "")
        else:
            what = f"onnxruntime cannot load the converted model ({first_line(e)})"
        raise ConversionError(f"onnx: {what} (entry '{entry.name}'); {fix}") from e


EXTERNAL_THRESHOLD = 1 << 20
"""Initializers of this many bytes or more go to ``NAME.onnx.data`` (the converter's own threshold)."""


def _data_file(path: Path) -> Path:
    """``NAME.onnx.data`` beside ``NAME.onnx``: where the large weights go."""
    return path.with_name(f"{path.name}.data")


def _save(model: Any, path: Path) -> None:
    """Writes ``model`` (an ``onnx_ir.Model``) to ``path``, large weights streamed to ``NAME.onnx.data``.

    Each initializer of :data:`EXTERNAL_THRESHOLD` bytes or more is written to the data file
    one at a time, so no serialised copy of all the weights is ever held; the ``.onnx``
    file keeps the graph and the small tensors. No data file is left when nothing spilled.
    """
    import onnx_ir

    data = _data_file(path)
    data.unlink(missing_ok=True)
    onnx_ir.save(model, path, external_data=data.name, size_threshold_bytes=EXTERNAL_THRESHOLD - 1)  # it spills what is over the threshold
    if data.exists() and data.stat().st_size == 0:
        data.unlink()


def export_onnx(entries: list[Entry], out_dir: Path, *, opset: int = DEFAULT_OPSET) -> dict[str, Any]:
    """Writes one ``.onnx`` per entry; returns the manifest section."""
    from jax2onnx import to_onnx

    from ..builder.unroll import unrolled_scans

    with contextlib.suppress(ImportError):  # jax2onnx may run onnxruntime; keep its warnings quiet
        import onnxruntime

        onnxruntime.set_default_logger_severity(3)
    out_dir.mkdir(parents=True, exist_ok=True)
    section: dict[str, Any] = {"opset": opset, "entries": {}}
    for entry in entries:
        path = out_dir / f"{entry.name}.onnx"
        args = symbolic_args(entry.inputs)
        # The function as written first: jax2onnx converts high-level calls (pooling, ...)
        # best from their own traces. The dead-code-eliminated jaxpr is the fallback for
        # functions carrying unused RNG state that ONNX cannot hold (nnx.RNN in eval mode).
        attempts = [entry.ff.closed]
        attempts.append(lambda entry=entry, args=args: pruned(entry.ff.closed(), args))
        error: BaseException | None = None
        for make in attempts:
            try:
                with unrolled_scans():  # the fallback traces here
                    fn = make()
                # conversion_fixes: the converter's faults worked around (see onnx_fixes);
                # unrolled_scans: scanned repeats as one call per copy, so the converter's
                # layer plugins apply to them (a scan becomes a Loop of traced arithmetic)
                with quiet_logger("onnx_ir"), conversion_fixes(), unrolled_scans():  # onnx_ir: per-value "type is not known" notes
                    model = to_onnx(
                        fn,
                        inputs=args,
                        model_name=entry.name,
                        opset=opset,
                        # LayerNormalization (and RMS/GroupNormalization) nodes, which onnxruntime
                        # runs as one kernel, instead of their arithmetic
                        normalization_mode="prefer_native",
                        input_names=[i.name for i in entry.inputs],
                        output_names=[o.name for o in entry.outputs],
                        # the model as onnx_ir holds it, its weights written tensor by
                        # tensor (return_mode="file" serialises the whole ModelProto first:
                        # one more copy of every weight in memory)
                        return_mode="ir",
                    )
                    _save(model, path)
                    del model  # the converter's graph and constants, before the next entry and the load check
                error = None
                break
            except Exception as e:  # noqa: BLE001  (the next attempt, or the explained error)
                error = error or e
                path.unlink(missing_ok=True)
                _data_file(path).unlink(missing_ok=True)
        if error is not None:
            raise ConversionError(_explain(entry, error)) from error
        release_memory()  # what the conversion freed, before onnxruntime loads the file
        _check_runtime(entry, path)
        section["entries"][entry.name] = path.name
    return section


# ---- the target ---------------------------------------------------------------------------


def _export(entries: list[Entry], root: Path, options: ExportOptions) -> dict[str, Any]:
    return {"dir": "onnx", **export_onnx(entries, root / "onnx")}


def _load(root: Path, section: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Run]:
    """An onnxruntime CPU session of the entry's ``.onnx`` file."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    # onnxruntime's idle threads spin by default, taking the cores from whatever runs next
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    path = root / section["dir"] / section["entries"][entry["name"]]
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    in_names = [i["name"] for i in entry["inputs"]]
    by_name = {o.name: k for k, o in enumerate(session.get_outputs())}
    order = [by_name.get(o["name"], k) for k, o in enumerate(entry["outputs"])]

    def call(*feeds: Any) -> tuple[Any, ...]:
        # OrtValues: plain session.run neither takes nor returns bfloat16
        outs = ort_outputs(session.run_with_ort_values(None, ort_feeds(ort, dict(zip(in_names, feeds, strict=True)))))
        return tuple(outs[k] for k in order)

    return {"onnx": Run(call)}


TARGET = Target(
    name="onnx",
    summary="ONNX (jax2onnx, weights as initializers), run with onnxruntime",
    folder="onnx",
    layout="onnx/<entry>.onnx  [<entry>.onnx.data]",
    export=_export,
    load=_load,
)
