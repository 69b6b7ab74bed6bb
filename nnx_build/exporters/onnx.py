"""ONNX through ``jax2onnx``, named dims dynamic (``dim_param``), weights as initializers.

One file per entry point: ``DIR/onnx/NAME.onnx`` (``main`` or a spec method); inputs and
outputs carry the spec's names. Large weights spill into ``NAME.onnx.data`` beside.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .common import Entry, first_line, symbolic_args
from .errors import ConversionError

__all__ = ["DEFAULT_OPSET", "export_onnx"]

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


def export_onnx(entries: list[Entry], out_dir: Path, *, opset: int = DEFAULT_OPSET) -> dict[str, Any]:
    """Writes one ``.onnx`` per entry; returns the manifest section."""
    from jax2onnx import to_onnx

    out_dir.mkdir(parents=True, exist_ok=True)
    section: dict[str, Any] = {"opset": opset, "entries": {}}
    for entry in entries:
        path = out_dir / f"{entry.name}.onnx"
        try:
            to_onnx(
                entry.ff.closed(),
                inputs=symbolic_args(entry.inputs),
                model_name=entry.name,
                opset=opset,
                input_names=[i.name for i in entry.inputs],
                output_names=[o.name for o in entry.outputs],
                return_mode="file",
                output_path=str(path),
            )
        except Exception as e:
            raise ConversionError(_explain(entry, e)) from e
        section["entries"][entry.name] = path.name
    return section
