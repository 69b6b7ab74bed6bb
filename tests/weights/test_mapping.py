"""The weights: mapping on synthetic checkpoints in Hugging Face naming, written here."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

import nnx_build
from nnx_build.cli import main
from nnx_build.errors import SpecErrors
from nnx_build.fastpath import fast_forward, flat_weights
from nnx_build.weights import check_weights, export_weights

from .bert_numpy import bert_forward

ROOT = Path(__file__).resolve().parents[2]
MINILM = (ROOT / "specs" / "hf" / "all_minilm_l6_v2.yaml").read_text()
ARGS = "args: {vocab: 30522, context: 512, types: 2, hidden: 384, heads: 12, ffn: 1536, layers: 6, dropout: 0.1}"
TINY = dict(vocab=13, context=7, types=2, hidden=8, heads=2, ffn=12, layers=3)


def tiny_spec(tmp_path: Path, *, scan: bool = True) -> Path:
    """The shipped MiniLM spec and mapping with tiny sizes."""
    assert ARGS in MINILM
    text = MINILM.replace(ARGS, "args: {" + ", ".join(f"{k}: {v}" for k, v in TINY.items()) + ", dropout: 0.1}")
    text = re.sub(r"tests:.*", "", text, flags=re.S)  # its tests count the real model's parameters
    if not scan:
        assert "      scan: true\n" in text
        text = text.replace("      scan: true\n", "")
    path = tmp_path / ("tiny.yaml" if scan else "tiny_unscanned.yaml")
    path.write_text(text)
    return path


def hf_checkpoint(seed: int = 0) -> dict[str, np.ndarray]:
    """Tensors named and shaped as Hugging Face BertModel's state dict (torch layouts)."""
    rng = np.random.default_rng(seed)
    h, f = TINY["hidden"], TINY["ffn"]

    def t(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.5).astype(np.float32)

    w = {
        "embeddings.word_embeddings.weight": t(TINY["vocab"], h),
        "embeddings.position_embeddings.weight": t(TINY["context"], h),
        "embeddings.token_type_embeddings.weight": t(TINY["types"], h),
        "embeddings.LayerNorm.weight": 1 + t(h),
        "embeddings.LayerNorm.bias": t(h),
        "embeddings.position_ids": np.arange(TINY["context"], dtype=np.int64)[None],
        "pooler.dense.weight": t(h, h),
        "pooler.dense.bias": t(h),
    }
    for i in range(TINY["layers"]):
        p = f"encoder.layer.{i}"
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            w[f"{p}.{name}.weight"], w[f"{p}.{name}.bias"] = t(h, h), t(h)
        w[f"{p}.intermediate.dense.weight"], w[f"{p}.intermediate.dense.bias"] = t(f, h), t(f)
        w[f"{p}.output.dense.weight"], w[f"{p}.output.dense.bias"] = t(h, f), t(h)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[f"{p}.{name}.weight"], w[f"{p}.{name}.bias"] = 1 + t(h), t(h)
    return w


TOKENS = {
    "input_ids": np.array([[1, 5, 7, 2, 0, 0], [1, 3, 12, 9, 4, 2]], np.int32),
    "token_type_ids": np.array([[0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1]], np.int32),
    "attention_mask": np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], np.int32),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tiny")
    save_file(hf_checkpoint(), str(d / "model.safetensors"))
    return {"spec": tiny_spec(d), "unscanned": tiny_spec(d, scan=False), "weights": d / "model.safetensors"}


@pytest.mark.parametrize("which", ["spec", "unscanned"])
def test_tiny_bert_matches_numpy_bert(files: dict[str, Path], which: str) -> None:
    # one mapping serves the scanned encoder (copies stacked) and the unscanned one (a list)
    model = nnx_build.build(files[which], weights=files["weights"])
    got = [np.asarray(x) for x in fast_forward(model)(*TOKENS.values())]
    want = bert_forward(hf_checkpoint(), **TOKENS, layers=TINY["layers"], heads=TINY["heads"])
    real = TOKENS["attention_mask"].astype(bool)
    np.testing.assert_allclose(got[0][real], want["last_hidden_state"][real], rtol=0, atol=1e-5)
    np.testing.assert_allclose(got[1], want["embeddings"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(got[2], want["pooler_output"], rtol=0, atol=1e-5)


def _truncated(tensors: dict[str, np.ndarray], path: Path) -> Path:
    """A safetensors file whose header is whole and whose data is cut off: reading any tensor fails."""
    save_file(tensors, str(path))
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    path.write_bytes(raw[: 8 + n + 4])
    return path


def _at(spec: Path, text: str) -> str:
    """``FILE:LINE:`` of the first line of ``spec`` holding ``text``."""
    line = next(i for i, line in enumerate(spec.read_text().splitlines(), 1) if text in line)
    return f"{spec}:{line}:"


def test_renamed_wrong_shape_and_extra_tensor_are_three_located_errors(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    w = hf_checkpoint()
    w["encoder.layer.1.attention.self.qurey.weight"] = w.pop("encoder.layer.1.attention.self.query.weight")
    w["encoder.layer.2.intermediate.dense.weight"] = w["encoder.layer.2.intermediate.dense.weight"][:, :5].copy()
    w["lm_head.bias"] = np.zeros(3, np.float32)
    bad = _truncated(w, tmp_path / "bad.safetensors")
    spec = files["spec"]
    for argv in (["check", str(spec), "--weights", str(bad)], ["build", str(spec), "--weights", str(bad)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if "error[" in line]
        assert len(lines) == 3, err
        assert "Traceback" not in err
        by_code = {re.search(r"error\[([a-z-]+)\]", line).group(1): line for line in lines}
        assert set(by_code) == {"weights-missing", "weights-shape", "weights-unused"}, lines
        missing, shape, unused = by_code["weights-missing"], by_code["weights-shape"], by_code["weights-unused"]
        # each located in the spec at its rule (or at the mapping for a tensor no rule uses)
        assert _at(spec, "attention.self.query.weight") in missing
        assert "'encoder.layer.1.attention.self.query.weight'" in missing and "'encoder/1/attn/query/kernel'" in missing
        assert "'encoder.layer.1.attention.self.qurey.weight'" in missing  # the renamed tensor, named once
        assert _at(spec, "intermediate.dense.weight") in shape
        assert "'encoder.layer.2.intermediate.dense.weight' (12, 5)" in shape and "variable 'encoder/2/intermediate/kernel' is (8, 12)" in shape
        assert _at(spec, "weights:") in unused and "'lm_head.bias'" in unused


def test_check_with_the_right_file_reads_no_tensor(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    ok = _truncated(hf_checkpoint(), tmp_path / "header_only.safetensors")
    assert main(["check", str(files["spec"]), "--weights", str(ok)]) == 0
    assert "no tensor read" in capsys.readouterr().out
    with pytest.raises(Exception):  # noqa: B017 - and a build, which reads them, cannot
        nnx_build.build(files["spec"], weights=ok)


def _write(tmp_path: Path, spec: str, tensors: dict[str, np.ndarray]) -> tuple[Path, Path]:
    (tmp_path / "s.yaml").write_text(spec)
    save_file(tensors, str(tmp_path / "w.safetensors"))
    return tmp_path / "s.yaml", tmp_path / "w.safetensors"


QKV = """\
format: 1
name: qkv
inputs: {x: [batch, 4]}
layers:
  - q: {type: Linear, in_features: 4, out_features: 3, in: x}
  - k: {type: Linear, in_features: 4, out_features: 3, in: x}
  - v: {type: Linear, in_features: 4, out_features: 3, in: x}
  - qk: {type: add, in: [q, k]}
  - out: {type: add, in: [qk, v]}
weights:
  map:
    attn.c_attn.weight: {to: [q/kernel, k/kernel, v/kernel], split: 0, transforms: [transpose]}
    attn.c_attn.bias: {to: [q/bias, k/bias, v/bias], split: 0}
"""


def test_split_fills_three_variables_from_a_fused_tensor(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    w = {"attn.c_attn.weight": rng.standard_normal((9, 4)).astype(np.float32), "attn.c_attn.bias": rng.standard_normal(9).astype(np.float32)}
    spec, path = _write(tmp_path, QKV, w)
    model = nnx_build.build(spec, weights=path)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    # torch: the fused projection's rows 0-2 are q, 3-5 k, 6-8 v; y = x @ W.T + b
    fused = x @ w["attn.c_attn.weight"].T + w["attn.c_attn.bias"]
    np.testing.assert_allclose(np.asarray(model(x)), fused[:, :3] + fused[:, 3:6] + fused[:, 6:], rtol=1e-5, atol=1e-5)


CONV = """\
format: 1
name: conv
inputs: {x: [batch, 5, 6, 2]}
layers:
  - conv1: {type: Conv, in_features: 2, out_features: 3, kernel_size: [3, 2], padding: VALID}
weights:
  map:
    conv1.weight: {to: conv1/kernel, transforms: [oihw_to_hwio]}
    conv1.bias: conv1/bias
"""


def test_oihw_conv_kernel_into_hwio(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    w = {"conv1.weight": rng.standard_normal((3, 2, 3, 2)).astype(np.float32), "conv1.bias": rng.standard_normal(3).astype(np.float32)}
    spec, path = _write(tmp_path, CONV, w)
    model = nnx_build.build(spec, weights=path)
    x = rng.standard_normal((1, 5, 6, 2)).astype(np.float32)
    # torch Conv2d: out[o, y, x] = b[o] + sum_{i, ky, kx} in[i, y + ky, x + kx] * W[o, i, ky, kx] (NCHW)
    want = np.zeros((1, 3, 3, 5), np.float64)
    xc = x.transpose(0, 3, 1, 2)
    for o in range(3):
        for yy in range(3):
            for xx in range(5):
                want[0, o, yy, xx] = w["conv1.bias"][o] + np.sum(xc[0, :, yy : yy + 3, xx : xx + 2] * w["conv1.weight"][o])
    np.testing.assert_allclose(np.asarray(model(x)), want.transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)


LINEAR = """\
format: 1
name: lin
inputs: {x: [batch, 4]}
layers:
  - fc: {type: Linear, in_features: 4, out_features: 3}
weights:
  map:
    fc.weight: {to: fc/kernel, transforms: [transpose]}
    fc.bias: fc/bias
"""


def test_dtype_needs_a_cast(tmp_path: Path) -> None:
    w = {"fc.weight": np.ones((3, 4), np.float16), "fc.bias": np.arange(3, dtype=np.float32)}
    spec, path = _write(tmp_path, LINEAR, w)
    with pytest.raises(SpecErrors) as info:
        nnx_build.build(spec, weights=path)
    assert info.value.codes == ["weights-dtype"] and "{cast: float32}" in str(info.value)
    spec.write_text(LINEAR.replace("transforms: [transpose]", "transforms: [transpose, {cast: float32}]"))
    model = nnx_build.build(spec, weights=path)
    assert flat_weights(model)["fc/kernel"].dtype == np.float32
    np.testing.assert_array_equal(np.asarray(flat_weights(model)["fc/kernel"]), np.ones((4, 3)))


def test_unfilled_twice_unknown_target_and_bad_transform(tmp_path: Path) -> None:
    spec = LINEAR.replace(
        "    fc.bias: fc/bias\n",
        "    fc.bias: fc/kernel\n    other.bias: fc/biass\n    more.weight: {to: fc/kernel, transforms: [flip]}\n",
    )
    spec_path, path = _write(tmp_path, spec, {"fc.weight": np.ones((3, 4), np.float32), "fc.bias": np.zeros(3, np.float32)})
    with pytest.raises(SpecErrors) as info:
        check_weights(nnx_build.compile(spec_path), path)
    assert info.value.codes == ["weights-transform"]  # a bad transform stops before matching
    assert "unknown transform 'flip'" in str(info.value)
    spec_path.write_text(spec.replace("{to: fc/kernel, transforms: [flip]}", "fc/kernel"))
    with pytest.raises(SpecErrors) as info:
        check_weights(nnx_build.compile(spec_path), path)
    text = str(info.value)
    assert sorted(info.value.codes) == ["weights-target", "weights-twice", "weights-twice", "weights-unfilled"], text
    assert "'fc/biass' of tensor pattern 'other.bias' names no variable of the model (did you mean 'fc/bias'?)" in text
    assert "variable 'fc/bias' (3,) is filled by no tensor" in text


def test_mapping_in_its_own_file_is_located_there(tmp_path: Path) -> None:
    head, mapping = LINEAR.split("weights:\n")
    (tmp_path / "hf.yaml").write_text(mapping.replace("  map:", "map:").replace("\n    ", "\n  ") .replace("fc.bias: fc/bias", "fc.bias: fc/bais"))
    spec_path, path = _write(tmp_path, head + "weights: hf.yaml\n", {"fc.weight": np.ones((3, 4), np.float32), "fc.bias": np.zeros(3, np.float32)})
    with pytest.raises(SpecErrors) as info:
        check_weights(nnx_build.compile(spec_path), path)
    target = next(e for e in info.value.errors if e.code == "weights-target")
    assert target.loc.file == str(tmp_path / "hf.yaml") and target.loc.line == 3, info.value


def test_export_through_the_inverse_mapping_is_bit_exact(files: dict[str, Path], tmp_path: Path) -> None:
    program = nnx_build.compile(files["spec"])
    model = nnx_build.build(files["spec"], weights=files["weights"])
    out = export_weights(model, program, files["weights"], tmp_path / "back.safetensors")
    from safetensors.numpy import load_file

    want, got = load_file(str(files["weights"])), load_file(str(out))
    assert got.keys() == want.keys()
    for k in want:
        assert got[k].dtype == want[k].dtype and np.array_equal(got[k], want[k]), k


def test_own_checkpoint_of_a_mapped_model_loads_and_goes_back(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    # fine-tuning from the mapped checkpoint writes the model's own names; the spec loads both
    tuned = nnx_build.build(files["spec"], weights=files["weights"])
    own = {k: np.asarray(v) + 1 for k, v in flat_weights(tuned).items()}
    nnx_build.save_weights(own, tmp_path / "tuned.npz")
    again = nnx_build.build(files["spec"], weights=tmp_path / "tuned.npz")
    for k, v in flat_weights(again).items():
        np.testing.assert_array_equal(np.asarray(v), own[k])
    out = tmp_path / "tuned.safetensors"
    argv = ["weights", str(files["spec"]), "--weights", str(tmp_path / "tuned.npz"), "--like", str(files["weights"]), "--out", str(out)]
    assert main(argv) == 0
    from safetensors.numpy import load_file

    got, src = load_file(str(out)), load_file(str(files["weights"]))
    assert got.keys() == src.keys()
    np.testing.assert_array_equal(got["embeddings.position_ids"], src["embeddings.position_ids"])  # a buffer, copied
    np.testing.assert_array_equal(got["pooler.dense.weight"], src["pooler.dense.weight"] + 1)
    np.testing.assert_array_equal(got["encoder.layer.2.attention.self.key.weight"], src["encoder.layer.2.attention.self.key.weight"] + 1)
    assert main(argv) == 2 and "exists; pass --force" in capsys.readouterr().err


def test_lora_on_a_pretrained_base(files: dict[str, Path], tmp_path: Path) -> None:
    # the same mapping fills the wrapped layers' base_module; the adapters keep their init
    text = files["spec"].read_text()
    old = "      dropout: \"${dropout}\"\n"
    assert text.count(old) == 1
    (tmp_path / "lora.yaml").write_text(text.replace(old, old + "      lora: {rank: 2, targets: [intermediate, output]}\n"))
    lora = nnx_build.build(tmp_path / "lora.yaml", weights=files["weights"])
    plain = nnx_build.build(files["spec"], weights=files["weights"])
    w = flat_weights(lora)
    assert w["encoder/intermediate/lora_a"].shape == (TINY["layers"], TINY["hidden"], 2)
    np.testing.assert_array_equal(np.asarray(w["encoder/intermediate/base_module/kernel"]), np.asarray(flat_weights(plain)["encoder/intermediate/kernel"]))
    np.testing.assert_allclose(
        np.asarray(fast_forward(lora)(*TOKENS.values())[1]), np.asarray(fast_forward(plain)(*TOKENS.values())[1]), atol=1e-6
    )
    # a trained adapter goes back merged into the checkpoint's weight: W.T + A @ B
    rng = np.random.default_rng(5)
    b = rng.standard_normal(w["encoder/intermediate/lora_b"].shape).astype(np.float32)
    lora.encoder.intermediate.lora_b.set_value(b)
    out = export_weights(lora, nnx_build.compile(tmp_path / "lora.yaml"), files["weights"], tmp_path / "merged.safetensors")
    from safetensors.numpy import load_file

    got, src = load_file(str(out)), load_file(str(files["weights"]))
    a = np.asarray(w["encoder/intermediate/lora_a"])
    want = src["encoder.layer.1.intermediate.dense.weight"] + (a[1] @ b[1]).T
    np.testing.assert_allclose(got["encoder.layer.1.intermediate.dense.weight"], want, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(got["encoder.layer.1.output.dense.weight"], src["encoder.layer.1.output.dense.weight"])  # lora_b zero


def test_check_without_a_mapping_uses_the_variable_names(tmp_path: Path, capsys) -> None:
    spec = "format: 1\nname: two\ninputs: {x: [batch, 2]}\nlayers:\n  - linear: {type: Linear, in_features: 2, out_features: 4}\n"
    tensors = {"linear/kernel": np.zeros((2, 4), np.float32), "linear/bias": np.zeros(5, np.float32), "extra": np.zeros(1, np.float32)}
    spec_path, path = _write(tmp_path, spec, tensors)
    assert main(["check", str(spec_path), "--weights", str(path)]) == 2
    err = capsys.readouterr().err
    assert "error[weights-shape]: tensor 'linear/bias' (5,) float32 is (5,), but variable 'linear/bias' is (4,)" in err
    assert "error[weights-unused]: tensor 'extra' (1,) float32" in err and "needs a weights: mapping" in err
    del tensors["extra"]
    tensors["linear/bias"] = np.zeros(4, np.float32)
    save_file(tensors, str(path))
    assert main(["check", str(spec_path), "--weights", str(path)]) == 0


def test_fine_tune_from_a_mapped_checkpoint_and_back(tmp_path: Path, capsys) -> None:
    # train --weights starts from the pretrained file; its checkpoint (the model's own names)
    # goes back to the pretrained naming with nnx-build weights --like
    lr = 0.5
    spec = LINEAR + f"""\
train:
  targets: {{y: {{dtype: float32, shape: [3]}}}}
  loss: mean_squared_error
  optimizer: {{type: sgd, learning_rate: {lr}, momentum: 0.9}}
  batch_size: 4
  epochs: 1
  eval_split: 0.0
"""
    rng = np.random.default_rng(6)
    w = {"fc.weight": rng.standard_normal((3, 4)).astype(np.float32), "fc.bias": rng.standard_normal(3).astype(np.float32)}
    spec_path, path = _write(tmp_path, spec, w)
    x = rng.standard_normal((4, 4)).astype(np.float32)
    y = rng.standard_normal((4, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    argv = ["train", str(spec_path), "--data", str(tmp_path / "d.npz"), "--weights", str(path), "--out", str(tmp_path / "ckpt"), "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().err
    out = tmp_path / "tuned.safetensors"
    assert main(["weights", str(spec_path), "--weights", str(tmp_path / "ckpt"), "--like", str(path), "--out", str(out)]) == 0
    from safetensors.numpy import load_file

    got = load_file(str(out))
    # one full-batch SGD step (momentum: its first step is plain SGD) on mean((x @ W.T + b - y)**2)
    # from the pretrained W, b, with the gradient by hand
    err = x @ w["fc.weight"].T + w["fc.bias"] - y
    grad_w = 2 * err.T @ x / err.size
    grad_b = 2 * err.sum(0) / err.size
    np.testing.assert_allclose(got["fc.weight"], w["fc.weight"] - lr * grad_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["fc.bias"], w["fc.bias"] - lr * grad_b, rtol=1e-5, atol=1e-6)


def test_load_weights_of_a_spec_goes_through_its_mapping(files: dict[str, Path]) -> None:
    model = nnx_build.load_weights(files["spec"], files["weights"])
    want = hf_checkpoint()["encoder.layer.2.attention.output.dense.bias"]
    np.testing.assert_array_equal(np.asarray(flat_weights(model)["encoder/attn/out/bias"])[2], want)
