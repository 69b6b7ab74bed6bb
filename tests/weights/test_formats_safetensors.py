"""safetensors (single file, sharded index, folder) and refused pickle files."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

import nnx_build
from nnx_build.fastpath import flat_weights
from nnx_build.weights import WeightsError, open_weights, read_weights

SPEC = """\
format: 1
name: two
seed: 0
inputs: {x: [batch, 2]}
layers:
  - linear: {type: Linear, in_features: 2, out_features: 4}
  - blk: {type: Linear, in_features: 4, out_features: 4, repeat: 3, scan: true}
"""


def _weights(seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = {"linear/kernel": (2, 4), "linear/bias": (4,), "blk/kernel": (3, 4, 4), "blk/bias": (3, 4)}
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


def _model_state(model) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in flat_weights(model).items()}


def test_single_file_round_trip_into_a_build(tmp_path: Path) -> None:
    want = _weights()
    save_file(want, str(tmp_path / "w.safetensors"))
    got = _model_state(nnx_build.build(SPEC, weights=tmp_path / "w.safetensors"))
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
    # and back: save_weights picks safetensors from the suffix
    out = nnx_build.save_weights(nnx_build.build(SPEC, weights=tmp_path / "w.safetensors"), tmp_path / "again.safetensors")
    again = read_weights(out)
    for k in want:
        np.testing.assert_array_equal(again[k], want[k])


def test_sharded_index_and_folder(tmp_path: Path) -> None:
    want = _weights(2)
    save_file({k: want[k] for k in ("linear/kernel", "linear/bias")}, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_file({k: want[k] for k in ("blk/kernel", "blk/bias")}, str(tmp_path / "model-00002-of-00002.safetensors"))
    index = {
        "metadata": {"total_size": sum(v.nbytes for v in want.values())},
        "weight_map": {k: f"model-0000{1 if k.startswith('linear') else 2}-of-00002.safetensors" for k in want},
    }
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    for path in (tmp_path / "model.safetensors.index.json", tmp_path):
        with open_weights(path) as src:
            infos = src.infos()
            assert {k: i.shape for k, i in infos.items()} == {k: v.shape for k, v in want.items()}
            assert Path(infos["blk/kernel"].file).name == "model-00002-of-00002.safetensors"
            np.testing.assert_array_equal(src.read("blk/kernel"), want["blk/kernel"])
        got = _model_state(nnx_build.build(SPEC, weights=path))
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])


def test_index_shard_outside_its_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "../elsewhere.safetensors"}}))
    with pytest.raises(WeightsError, match="outside the index's folder"):
        open_weights(tmp_path / "model.safetensors.index.json")


def test_header_is_read_without_the_tensors(tmp_path: Path) -> None:
    # a header that promises 4 GB of data the file does not have: the header alone is read
    header = json.dumps({"big": {"dtype": "F32", "shape": [1 << 30], "data_offsets": [0, 4 << 30]}}).encode()
    path = tmp_path / "big.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    with open_weights(path) as src:
        info = src.infos()["big"]
    assert info.shape == (1 << 30,) and info.dtype == np.float32 and info.nbytes == 4 << 30


def test_bfloat16_tensors_are_read(tmp_path: Path) -> None:
    import ml_dtypes

    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    raw = x.astype(ml_dtypes.bfloat16).tobytes()
    header = json.dumps({"x": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, len(raw)]}}).encode()
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + raw)
    with open_weights(path) as src:
        got = src.read("x")
    assert got.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(got.astype(np.float32), x)


class _Trap:
    """Unpickling this creates a file: the proof that a loader unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "model.pth", "last.ckpt"])
def test_pickle_files_are_refused_never_unpickled(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "unpickled"
    (tmp_path / name).write_bytes(pickle.dumps(_Trap(marker)))
    with pytest.raises(WeightsError) as info:
        nnx_build.build(SPEC, weights=tmp_path / name)
    message = str(info.value)
    assert "\n" not in message and "never unpickles" in message and "safetensors" in message and name in message
    assert not marker.exists()


def test_folder_with_only_a_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    (tmp_path / "pytorch_model.bin").write_bytes(pickle.dumps(_Trap(marker)))
    with pytest.raises(WeightsError, match="never unpickles"):
        read_weights(tmp_path)
    assert not marker.exists()


def test_cli_refuses_a_pickle_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nnx_build.cli import main

    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04N.")
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC)
    assert main(["build", str(spec), "--weights", str(tmp_path / "pytorch_model.bin")]) == 2
    err = capsys.readouterr().err
    assert "never unpickles" in err and "Traceback" not in err


def test_own_names_are_checked_from_the_header_before_any_read(tmp_path: Path) -> None:
    # a file in the model's own names with one wrong shape and its data cut off: the shape
    # error comes first (a read would fail on the missing data), and nothing is changed
    w = _weights(3)
    w["linear/bias"] = np.zeros(5, np.float32)
    path = tmp_path / "w.safetensors"
    save_file(w, str(path))
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    path.write_bytes(raw[: 8 + n])
    with pytest.raises(WeightsError, match=r"variable 'linear/bias' has shape \(5,\) in .*w\.safetensors, the model needs \(4,\)"):
        nnx_build.build(SPEC, weights=path)
