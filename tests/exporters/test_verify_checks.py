"""``verify`` checks what it claims: token ids over their range, every named dim, the weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import nnx_build
from nnx_build.exporters import VerificationError, export, verify_dir
from nnx_build.weights import save_weights

EMBED = """\
format: 1
name: tokens
inputs: {ids: {shape: [batch, 4], dtype: int32}}
layers:
  - embed: {type: Embed, num_embeddings: 10, features: 3}
"""

POOL = """\
format: 1
name: pool
inputs: {x: [batch, 3]}
layers:
  - lin: {type: Linear, in_features: 3, out_features: 2}
methods:
  pool:
    inputs: {z: [n, 3]}
    layers:
      - s: {type: REDUCE, in: z, axis: 0}
    outputs: [s]
"""


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_token_ids_cover_the_embedding(tmp_path: Path) -> None:
    spec = _write(tmp_path, "tokens.yaml", EMBED)
    out = tmp_path / "out"
    export(spec, out, to="savedmodel", batch_sizes=(2, 5))
    # a SavedModel whose embedding rows >= 2 are zero: ids drawn in {0, 1} would not see it
    model = nnx_build.build(spec)
    table = np.array(model.embed.embedding[...])
    table[2:] = 0.0
    save_weights({"embed/embedding": table}, tmp_path / "zeroed.npz")
    export(spec, tmp_path / "zeroed", to="savedmodel", weights=tmp_path / "zeroed.npz", verify=False)
    shutil.rmtree(out / "savedmodel")
    shutil.copytree(tmp_path / "zeroed" / "savedmodel", out / "savedmodel")
    with pytest.raises(VerificationError, match="savedmodel main:embed at batch=1 differs from JAX"):
        verify_dir(out)


def test_every_named_dim_is_varied(tmp_path: Path) -> None:
    spec = _write(tmp_path, "pool.yaml", POOL.replace("REDUCE", "sum"))
    out = tmp_path / "out"
    result = export(spec, out, to="stablehlo", batch_sizes=(1, 7))
    assert {(r["entry"], r["dims"]["n"]) for r in result.verification["results"] if r["entry"] == "pool"} == {("pool", 2), ("pool", 8)}
    # max and sum over an axis of size 1 agree: only a second size of n tells them apart
    other = _write(tmp_path, "max.yaml", POOL.replace("REDUCE", "max"))
    export(other, tmp_path / "max", to="stablehlo", verify=False)
    for f in ("pool.jax_export", "pool.mlirbc"):
        shutil.copy(tmp_path / "max" / "stablehlo" / f, out / "stablehlo" / f)
    with pytest.raises(VerificationError, match="stablehlo pool:s at batch=1, n=2 differs from JAX"):
        verify_dir(out)


def test_changed_weights_are_named_not_the_artifact(tmp_path: Path) -> None:
    spec = Path(__file__).resolve().parents[2] / "specs" / "seed" / "autoencoder.yaml"
    model = nnx_build.build(spec, seed=3)
    weights = tmp_path / "w.npz"
    save_weights(model, weights)
    out = tmp_path / "out"
    export(spec, out, to="stablehlo", weights=weights, verify=False)
    recorded = json.loads((out / "manifest.json").read_text())["weights"]
    assert recorded["path"] == str(weights.resolve()) and recorded["format"] == "npz"
    assert len(recorded["sha256"]) == 64 and len(recorded["digest"]) == 64
    verify_dir(out)  # unchanged: passes
    save_weights(nnx_build.build(spec, seed=4), weights)  # training went on, say
    with pytest.raises(VerificationError, match="weights changed since export"):
        verify_dir(out)


def test_a_checkpoint_records_its_step(tmp_path: Path) -> None:
    from nnx_build.exporters.manifest import weights_record

    run = tmp_path / "run"
    (run / "3" / "model").mkdir(parents=True)
    (run / "3" / "model" / "data").write_bytes(b"step three")
    first = weights_record(run)
    assert first is not None and first["step"] == 3 and first["format"] == "orbax"
    (run / "5" / "model").mkdir(parents=True)
    (run / "5" / "model" / "data").write_bytes(b"step five")
    assert weights_record(run) is not None and weights_record(run)["step"] == 5  # type: ignore[index]
    assert weights_record(run, step=3) == first  # the exported step, unchanged by later ones
    (run / "3" / "model" / "data").write_bytes(b"rewritten")
    assert weights_record(run, step=3)["sha256"] != first["sha256"]  # type: ignore[index]


def test_verify_loads_the_exported_checkpoint_step(tmp_path: Path) -> None:
    from nnx_build.fastpath import flat_weights
    from nnx_build.training.checkpoint import CheckpointStore

    spec = Path(__file__).resolve().parents[2] / "specs" / "seed" / "autoencoder.yaml"
    run = tmp_path / "run"
    with CheckpointStore(run, max_to_keep=2) as store:
        store.save(1, flat_weights(nnx_build.build(spec, seed=3)), [np.zeros(1, np.float32)], {"step": 0})
    out = tmp_path / "out"
    export(spec, out, to="stablehlo", weights=run, verify=False)
    assert json.loads((out / "manifest.json").read_text())["weights"]["step"] == 1
    with CheckpointStore(run, max_to_keep=2) as store:
        store.save(2, flat_weights(nnx_build.build(spec, seed=4)), [np.zeros(1, np.float32)], {"step": 0})  # training went on
    verify_dir(out)  # step 1, the one exported, not the latest
    with CheckpointStore(run, max_to_keep=1) as store:
        store.save(3, flat_weights(nnx_build.build(spec, seed=5)), [np.zeros(1, np.float32)], {"step": 0})  # step 1 is dropped
    with pytest.raises(VerificationError, match="weights changed since export: checkpoint step 1 is no longer in"):
        verify_dir(out)
