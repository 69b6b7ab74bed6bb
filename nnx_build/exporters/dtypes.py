"""Arrays of every dtype across processes and runtimes: bfloat16, float16, float8, int4.

numpy knows ``bfloat16`` and friends only through ``ml_dtypes`` (as JAX does), and ``.npz``
stores them as opaque void bytes (``|V2``) that no runtime accepts. Here arrays are saved as
their raw bytes with the dtype name beside, and read back as the same dtype; onnxruntime
gets them as ``OrtValue``s of the matching ONNX element type. Comparison happens in
float64 with a tolerance fit for the output dtype.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DEFAULT_TOLERANCE", "as_float", "load_arrays", "np_dtype", "ort_feeds", "ort_outputs", "save_arrays"]

#: per output dtype (absolute and relative); ``tolerance=`` overrides it for floating outputs
DEFAULT_TOLERANCE = {"float64": 1e-9, "float32": 1e-5, "float16": 1e-3, "bfloat16": 1e-2}
_DTYPES_KEY = "__dtypes__"


def np_dtype(name: str) -> np.dtype[Any]:
    """The numpy dtype of a JAX dtype name, ``ml_dtypes`` ones included (``bfloat16``)."""
    import ml_dtypes

    extra = getattr(ml_dtypes, name, None)
    return np.dtype(extra) if extra is not None else np.dtype(name)


def _contiguous(value: Any) -> np.ndarray:
    a = np.asarray(value)  # not np.ascontiguousarray: that makes a 0-d array 1-d
    return a if a.flags.c_contiguous else a.copy(order="C")


def _native(dtype: np.dtype[Any]) -> bool:
    return dtype.kind in "biufc?" and type(dtype).__module__.startswith("numpy")


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Writes ``arrays`` to an ``.npz``; non-numpy dtypes as raw bytes, every dtype name recorded."""
    stored: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    for key, value in arrays.items():
        a = _contiguous(value)
        dtypes[key] = a.dtype.name
        stored[key] = a if _native(a.dtype) else a.view(np.dtype(f"u{a.dtype.itemsize}"))
    stored[_DTYPES_KEY] = np.array(json.dumps(dtypes))
    np.savez(path, **stored)


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Reads what :func:`save_arrays` wrote, each array in its own dtype again."""
    with np.load(path) as data:
        dtypes = json.loads(str(data[_DTYPES_KEY])) if _DTYPES_KEY in data.files else {}
        out = {}
        for key in data.files:
            if key == _DTYPES_KEY:
                continue
            a = data[key]
            name = dtypes.get(key)
            if name is not None and a.dtype.name != name:
                a = a.view(np_dtype(name))
            out[key] = a
    return out


def as_float(a: np.ndarray) -> np.ndarray:
    """``a`` as float64 (bfloat16 and the other ``ml_dtypes`` included) for comparison."""
    return np.asarray(a).astype(np.float64)


def _onnx_type(dtype: np.dtype[Any]) -> int | None:
    """The ONNX element type of a non-numpy dtype (``bfloat16`` -> 16), else None."""
    if _native(dtype):
        return None
    from onnx import helper

    return int(helper.np_dtype_to_tensor_dtype(dtype))


def ort_feeds(ort: Any, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
    """onnxruntime inputs as ``OrtValue``s (``bfloat16`` and friends from their raw bytes)."""
    out: dict[str, Any] = {}
    for name, value in feeds.items():
        a = _contiguous(value)
        element = _onnx_type(a.dtype)
        if element is None:
            out[name] = ort.OrtValue.ortvalue_from_numpy(a)
        else:
            raw = a.view(np.dtype(f"u{a.dtype.itemsize}"))
            out[name] = ort.OrtValue.ortvalue_from_numpy_with_onnx_type(raw, element)
    return out


def ort_outputs(values: list[Any]) -> list[np.ndarray]:
    """``session.run_with_ort_values`` results as numpy arrays; ``bfloat16`` ones copied out as raw bytes."""
    import ctypes

    from onnx import helper

    out = []
    for value in values:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(value.element_type()))
        if not _native(dtype):
            a = np.empty(value.shape(), dtype)
            ctypes.memmove(a.ctypes.data, value.data_ptr(), a.nbytes)
        else:
            a = np.asarray(value.numpy())
        out.append(a)
    return out
