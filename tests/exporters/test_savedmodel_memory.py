"""SavedModel weights: the variables share the JAX buffers while exporting, and are saved bit for bit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nnx_build

SEED = Path(__file__).resolve().parents[2] / "specs" / "seed"


def _address(tf: Any, tensor: Any) -> int:
    """The address of a TF tensor's data, read through DLPack (no copy)."""
    import jax

    class View:
        def __dlpack__(self, **_: Any) -> Any:
            return tf.experimental.dlpack.to_dlpack(tensor)

        def __dlpack_device__(self) -> tuple[int, int]:
            return (1, 0)  # kDLCPU

    return int(jax.dlpack.from_dlpack(View()).unsafe_buffer_pointer())


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int32", "bool"])
def test_variable_shares_the_jax_buffer(tf: Any, dtype: str) -> None:
    import jax.numpy as jnp

    from nnx_build.exporters.savedmodel import shared_tensor

    array = jnp.arange(12).reshape(3, 4).astype(dtype)
    variable = tf.Variable(shared_tensor(tf, array), trainable=False)
    assert variable.dtype.name == dtype
    assert _address(tf, variable.read_value()) == array.unsafe_buffer_pointer()
    np.testing.assert_array_equal(variable.numpy(), np.asarray(array))


def test_numpy_weight_is_copied(tf: Any) -> None:
    from nnx_build.exporters.savedmodel import shared_tensor

    array = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    tensor = shared_tensor(tf, array)
    array[0, 0] = 7.0  # the tensor is a copy: a later change of the array is not seen
    assert tensor.numpy()[0, 0] == np.float32(-1.0)


def test_saved_variables_are_the_weights_bit_for_bit(exports: Any, tf: Any) -> None:
    manifest = exports.manifest("autoencoder")
    keys = manifest["artifacts"]["savedmodel"]["variables"]
    loaded = tf.saved_model.load(str(exports("autoencoder") / "savedmodel" / "1"))
    # the same seed builds the same weights: an independent build is the reference
    want = nnx_build.fast_forward(nnx_build.build(SEED / "autoencoder.yaml")).weights
    assert sorted(want) == keys and len(loaded.weights) == len(keys)
    for key, variable in zip(keys, loaded.weights, strict=True):
        got, ref = variable.numpy(), np.asarray(want[key])
        assert got.dtype == ref.dtype and got.shape == ref.shape, key
        assert got.tobytes() == ref.tobytes(), key


def test_weights_digest_hashes_every_weight_as_written() -> None:
    import hashlib

    import jax.numpy as jnp

    from nnx_build.exporters.manifest import weights_digest

    weights = {
        "b/kernel": jnp.arange(6, dtype=jnp.float32).reshape(2, 3),
        "a/scale": jnp.asarray(1.5, jnp.bfloat16),
        "c/mask": np.array([True, False, True]),
        "d/empty": np.zeros((0, 4), np.int8),
        "e/strided": np.arange(12, dtype=np.int32).reshape(3, 4)[:, ::2],
    }
    h = hashlib.sha256()  # the manifest's documented formula, written out
    for key in sorted(weights):
        a = np.atleast_1d(np.asarray(weights[key]))  # a 0-d weight is recorded with shape (1,)
        h.update(f"{key}\0{a.dtype.str}\0{a.shape}\0".encode() + a.tobytes(order="C"))
    assert weights_digest(weights) == h.hexdigest()


def test_savedmodel_converts_after_the_other_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # TensorFlow's import stays resident: the other targets convert before it, the manifest keeps the asked order
    from dataclasses import replace

    from nnx_build.exporters import TARGETS, export

    calls: list[str] = []

    def recorder(name: str) -> Any:
        def convert(entries: list[Any], root: Path, options: Any) -> dict[str, Any]:
            calls.append(name)
            (root / name).mkdir()
            return {"dir": name}

        return convert

    for name in ("stablehlo", "savedmodel", "onnx"):
        monkeypatch.setitem(TARGETS, name, replace(TARGETS[name], export=recorder(name)))
    result = export(SEED / "model.yaml", tmp_path / "out", to="savedmodel,onnx,stablehlo", verify=False)
    assert calls == ["onnx", "stablehlo", "savedmodel"]
    assert result.manifest["targets"] == ["savedmodel", "onnx", "stablehlo"]
    assert list(result.manifest["artifacts"]) == ["savedmodel", "onnx", "stablehlo"]


def test_expected_outputs_are_computed_before_the_conversions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # verification's JAX outputs come before TensorFlow's import, not on top of it; they are the same
    from dataclasses import replace

    import dummy_target

    from nnx_build.exporters import TARGETS, export
    from nnx_build.fastpath import FastForward

    events: list[str] = []
    forward = FastForward.__call__

    def recorded(self: Any, *inputs: Any, **named: Any) -> Any:
        events.append("forward")
        return forward(self, *inputs, **named)

    def convert(entries: list[Any], root: Path, options: Any) -> dict[str, Any]:
        events.append("convert")
        return dummy_target.TARGET.export(entries, root, options)

    monkeypatch.setattr(FastForward, "__call__", recorded)
    monkeypatch.setitem(TARGETS, "dummy", replace(dummy_target.TARGET, export=convert))
    result = export(SEED / "model.yaml", tmp_path / "out", to="dummy", batch_sizes=(1, 3))
    assert result.verification["status"] == "passed"
    assert events == ["forward", "forward", "convert"]  # one per batch size, none after the conversion
    assert sorted(r["batch"] for r in result.verification["results"]) == [1, 3]
