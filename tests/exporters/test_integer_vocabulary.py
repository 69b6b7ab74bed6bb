"""Exported artifacts agree with JAX on EVERY token id of an Embed, not only on ids 0 and 1.

A tiny Embed (a vocabulary of 37, a prime, so no row is special) followed by a Linear is
exported to StableHLO and to a TF SavedModel; each artifact is loaded with its own
runtime (``jax.export.deserialize``, ``tf.saved_model.load``) and fed all 37 ids. The
embedding output must be exactly the model's table (row i for id i, by definition of an
embedding), and both outputs must equal the JAX model's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import nnx_build

VOCAB = 37

SPEC = f"""\
format: 1
name: vocab
seed: 0
inputs:
  tokens: {{shape: [batch, 1], dtype: int32}}
layers:
  - e: {{type: Embed, num_embeddings: {VOCAB}, features: 4}}
  - head: {{type: Linear, in_features: 4, out_features: 3}}
outputs: [e, head]
"""


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vocab") / "vocab.yaml"
    path.write_text(SPEC, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference(spec: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The JAX model's outputs on every id, and its embedding table."""
    model = nnx_build.build(spec)
    e, head = model(_ids())
    return {"e": np.asarray(e), "head": np.asarray(head)}, np.asarray(model.e.embedding[...])


def _export(spec: Path, target: str) -> Path:
    out = spec.parent / target
    nnx_build.export(spec, out, to=target, verify=False)  # verified here, independently
    return out


def _ids() -> np.ndarray:
    return np.arange(VOCAB, dtype=np.int32).reshape(VOCAB, 1)


def test_the_reference_is_the_table(reference) -> None:
    ref, table = reference
    assert table.shape == (VOCAB, 4) and np.all(np.abs(table).sum(1) > 0)  # every row is a real row
    np.testing.assert_array_equal(ref["e"][:, 0], table)


def _check(outs: dict[str, np.ndarray], ref: dict[str, np.ndarray], table: np.ndarray) -> None:
    e = np.asarray(outs["e"])
    bad = [i for i in range(VOCAB) if not np.allclose(e[i, 0], table[i], rtol=1e-6, atol=1e-7)]
    assert not bad, f"embedding rows differ for token ids {bad}"
    np.testing.assert_allclose(np.asarray(outs["head"]), ref["head"], rtol=1e-5, atol=1e-6)


def test_stablehlo_over_the_whole_vocabulary(spec: Path, reference) -> None:
    from jax import export as jax_export

    out = _export(spec, "stablehlo")
    ref, table = reference
    exp = jax_export.deserialize(bytearray((out / "stablehlo" / "main.jax_export").read_bytes()))
    e, head = exp.call(_ids())
    _check({"e": e, "head": head}, ref, table)


@pytest.mark.slow
def test_savedmodel_over_the_whole_vocabulary(spec: Path, reference) -> None:
    out = _export(spec, "savedmodel")
    import tensorflow as tf  # loaded by the export already
    ref, table = reference
    loaded = tf.saved_model.load(str(out / "savedmodel" / "1"))
    got = loaded.signatures["serving_default"](tokens=tf.constant(_ids()))
    _check({k: v.numpy() for k, v in got.items()}, ref, table)
