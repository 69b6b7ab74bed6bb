"""Shared by the static-shape export tests (``--dims``): a spec with a named dim besides the batch."""

from __future__ import annotations

from pathlib import Path

# fixing the batch leaves ``seq`` dynamic and varied
SEQ = """\
format: 1
name: seq_linear
seed: 0
dims: {batch: 1, seq: 3}
inputs:
  x: [batch, seq, 4]
layers:
  - proj: {type: Linear, in_features: 4, out_features: 2}
outputs: [proj]
"""


def module_text(path: Path) -> str:
    """StableHLO text of an exported module: a ``.mlir`` as it is, a ``.mlirbc`` portable artifact read by JAX's StableHLO deserializer."""
    if path.suffix == ".mlir":
        return path.read_text()
    from jax._src.interpreters import mlir as jmlir
    from jax.extend import mlir as jex

    assert path.suffix == ".mlirbc" and path.read_bytes().startswith(b"ML\xefR"), path
    with jmlir.make_ir_context():
        return str(jex.deserialize_portable_artifact(path.read_bytes()))


def portable_artifact(text: str, version: str) -> bytes:
    """StableHLO text as a portable artifact for ``version``, written by JAX's StableHLO serializer."""
    from jax._src.interpreters import mlir as jmlir
    from jax.extend import mlir as jex
    from jax.extend.mlir import ir

    with jmlir.make_ir_context():
        return bytes(jex.serialize_portable_artifact(ir.Module.parse(text), version, True))


def main_signature(mlir: str) -> str:
    """The signature line of ``@main`` in StableHLO text: its argument and result tensor types."""
    return next(ln for ln in mlir.splitlines() if "func.func public @main(" in ln)
