"""``nnx_build.build(weights=)``, ``save_weights`` / ``load_weights``: round trips and located errors."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

import nnx_build
from nnx_build.weights import FORMATS, WeightsError, read_weights

SPEC = """\
format: 1
name: two
seed: 0
inputs: {x: [batch, 2]}
layers:
  - linear: {type: Linear, in_features: 2, out_features: 4}
  - bn: {type: BatchNorm, num_features: 4}
  - out: {type: Linear, in_features: 4, out_features: 3}
"""


def _state(model: nnx.Module) -> dict[str, np.ndarray]:
    return {"/".join(map(str, p)): np.asarray(v.get_value()) for p, v in nnx.to_flat_state(nnx.state(model, nnx.Not(nnx.RngState)))}


def _perturb(model: nnx.Module) -> None:
    """Changes every variable (BatchNorm statistics too) by a seeded random amount."""
    rng = np.random.default_rng(7)
    for _, var in nnx.to_flat_state(nnx.state(model, nnx.Not(nnx.RngState))):
        value = np.asarray(var.get_value())
        var.set_value(jax.numpy.asarray(value + rng.standard_normal(value.shape).astype(value.dtype)))


@pytest.mark.parametrize("name", ["weights.npz", "ckpt"])
def test_round_trip_is_bit_identical(tmp_path: Path, name: str) -> None:
    model = nnx_build.build(SPEC)
    fresh = _state(nnx_build.build(SPEC))
    _perturb(model)
    want = _state(model)
    assert any(not np.array_equal(want[k], fresh[k]) for k in want)  # the change is visible

    path = nnx_build.save_weights(model, tmp_path / name)
    for loaded in (
        nnx_build.build(SPEC, weights=path),
        nnx_build.load_weights(SPEC, path),
        nnx_build.load_weights(nnx_build.build(SPEC, seed=3), path),
    ):
        got = _state(loaded)
        assert got.keys() == want.keys()
        for k in want:
            assert got[k].dtype == want[k].dtype and np.array_equal(got[k], want[k]), k
    x = np.linspace(-1, 1, 10, dtype=np.float32).reshape(5, 2)
    model.eval()
    loaded.eval()
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))


def test_formats_table_has_npz_and_orbax() -> None:
    assert {"npz", "orbax"} <= set(FORMATS)
    for fmt in FORMATS.values():
        assert callable(fmt.detect) and callable(fmt.load) and callable(fmt.save)


def _one_line(e: BaseException) -> str:
    text = str(e)
    assert "\n" not in text
    return text


def test_wrong_shape_is_one_located_line(tmp_path: Path) -> None:
    weights = _state(nnx_build.build(SPEC))
    weights["out/kernel"] = np.zeros((3, 4), np.float32)
    path = nnx_build.save_weights(weights, tmp_path / "w.npz")
    with pytest.raises(WeightsError) as info:
        nnx_build.build(SPEC, weights=path)
    text = _one_line(info.value)
    assert str(path) in text
    assert "'out/kernel' has shape (3, 4)" in text and "needs (4, 3)" in text


def test_missing_and_unknown_are_one_located_line(tmp_path: Path) -> None:
    weights = _state(nnx_build.build(SPEC))
    del weights["linear/bias"]
    weights["linear/kernal"] = weights.pop("linear/kernel")
    path = nnx_build.save_weights(weights, tmp_path / "w.npz")
    with pytest.raises(WeightsError) as info:
        nnx_build.load_weights(SPEC, path)
    text = _one_line(info.value)
    assert str(path) in text
    assert "'linear/bias' (4,) is missing" in text
    assert "'linear/kernal'" in text and "did you mean 'linear/kernel'" in text


def test_model_is_unchanged_when_weights_do_not_fit(tmp_path: Path) -> None:
    model = nnx_build.build(SPEC)
    before = _state(model)
    weights = {k: v + 1 for k, v in before.items()}
    weights["bn/scale"] = np.ones((5,), np.float32)
    path = nnx_build.save_weights(weights, tmp_path / "w.npz")
    with pytest.raises(WeightsError):
        nnx_build.load_weights(model, path)
    after = _state(model)
    assert all(np.array_equal(after[k], before[k]) for k in before)


def test_missing_file_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        nnx_build.build(SPEC, weights=tmp_path / "nope.npz")
    with pytest.raises(WeightsError, match=r"cannot tell the weights format of .*w\.bin"):
        nnx_build.save_weights(nnx_build.build(SPEC), tmp_path / "w.bin")
    (tmp_path / "w.txt").write_text("hello")
    with pytest.raises(WeightsError, match="unknown weights format"):
        read_weights(tmp_path / "w.txt")
