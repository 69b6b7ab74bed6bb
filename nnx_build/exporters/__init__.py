"""Exporters: StableHLO, TF SavedModel and ONNX, verified against JAX, written atomically.

>>> result = export("specs/seed/model.yaml", "build/model", to=("stablehlo", "onnx"))  # doctest: +SKIP
>>> result.manifest["verification"]["status"]                                          # doctest: +SKIP
'passed'

Layout of ``DIR``::

    manifest.json
    stablehlo/main.mlirbc  main.jax_export  <method>.mlirbc ...  [weights.npz]   (.mlir text with mlir_text=True)
    savedmodel/1/saved_model.pb  variables/
    onnx/main.onnx  <method>.onnx

Where things are: :mod:`.targets` (the table of targets; one module per target:
:mod:`.stablehlo`, :mod:`.savedmodel`, :mod:`.onnx`, each exposing a :class:`Target`),
:mod:`.export_dir` (:func:`export`, :func:`verify_dir`), :mod:`.entries` (the model and
its entry points), :mod:`.verify` and :mod:`.inputs` (verification), :mod:`.manifest`,
:mod:`.progress`, :mod:`.errors`; :mod:`.iree` (IREE compiling the StableHLO module in
verification, ``verify --runtime iree``). With several static variants (``dims=[{"batch":
1}, {"batch": 8}]``) each entry is exported once per variant: ``main_batch1``,
``main_batch8``. Nothing heavy is imported here: JAX, TensorFlow, jax2onnx,
onnxruntime and IREE load when used.
"""

from __future__ import annotations

from .errors import (
    ConversionError,
    ExportError,
    OutputExistsError,
    PartialExportError,
    VerificationError,
    WeightsError,
)
from .export_dir import PLATFORMS, ExportResult, export, verify_dir
from .target import ExportOptions, Run, Target
from .targets import TARGETS, parse_targets

__all__ = [
    "PLATFORMS",
    "TARGETS",
    "ConversionError",
    "ExportError",
    "ExportOptions",
    "ExportResult",
    "OutputExistsError",
    "PartialExportError",
    "Run",
    "Target",
    "VerificationError",
    "WeightsError",
    "export",
    "parse_targets",
    "verify_dir",
]
