"""``export(model, ...)``: a built module exports as it is now, after surgery."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from flax import nnx

import nnx_build
from nnx_build.exporters import ExportError, export, verify_dir
from nnx_build.weights import save_weights

SPEC = Path(__file__).resolve().parents[2] / "specs" / "seed" / "autoencoder.yaml"


def _run_stablehlo(out: Path, entry: str, x: np.ndarray) -> np.ndarray:
    from jax import export as jax_export

    exp = jax_export.deserialize(bytearray((out / "stablehlo" / f"{entry}.jax_export").read_bytes()))
    return np.asarray(exp.call(x))


def test_a_swapped_layer_is_exported(tmp_path: Path) -> None:
    model = nnx_build.build(SPEC, seed=0)
    model.decoder = nnx.Linear(10, 2, rngs=nnx.Rngs(42))  # surgery: a new decoder
    out = tmp_path / "out"
    result = export(model, out, to="stablehlo", batch_sizes=(1, 3))
    assert result.verification["status"] == "passed"
    x = np.random.default_rng(0).standard_normal((5, 2)).astype(np.float32)
    got = _run_stablehlo(out, "main", x)
    # independent of the exporters: the modified module's eager output, by hand
    encoded = x @ np.asarray(model.encoder.kernel[...]) + np.asarray(model.encoder.bias[...])
    by_hand = encoded @ np.asarray(model.decoder.kernel[...]) + np.asarray(model.decoder.bias[...])
    np.testing.assert_allclose(got, by_hand, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, np.asarray(model(x)), rtol=1e-5, atol=1e-5)
    assert not np.allclose(got, np.asarray(nnx_build.build(SPEC, seed=0)(x)), atol=1e-3)  # not the spec's
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["spec"] == {"name": "AutoEncoder", "path": None, "sha256": None, "source": "module"}
    assert [e["name"] for e in manifest["entries"]] == ["main", "encode"]
    with pytest.raises(ExportError, match="was exported from a module; pass the spec"):
        verify_dir(out)


def test_weights_go_into_a_copy(tmp_path: Path) -> None:
    model = nnx_build.build(SPEC, seed=0)
    before = np.asarray(model.decoder.kernel[...]).copy()
    save_weights(nnx_build.build(SPEC, seed=9), tmp_path / "w.npz")
    export(model, tmp_path / "out", to="stablehlo", weights=tmp_path / "w.npz", batch_sizes=(2,))
    np.testing.assert_array_equal(np.asarray(model.decoder.kernel[...]), before)
    x = np.ones((2, 2), np.float32)
    np.testing.assert_allclose(_run_stablehlo(tmp_path / "out", "main", x), np.asarray(nnx_build.build(SPEC, seed=9)(x)), rtol=1e-5, atol=1e-5)


def test_a_foreign_module_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="pass a spec .* or a module built by nnx_build.build"):
        export(nnx.Linear(2, 3, rngs=nnx.Rngs(0)), tmp_path / "out", to="stablehlo")
