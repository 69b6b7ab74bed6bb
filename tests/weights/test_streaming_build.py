"""``build --weights`` without a random initialisation first: the same module, less memory.

The module is made abstractly and filled from the file; its RNG state (Dropout) and the
variables the file does not fill (LoRA adapters) are those of the normal build, bit for
bit: a build followed by a load is the reference.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import save_file

import nnx_build
from nnx_build import pipeline
from nnx_build.weights import load_weights

# Dropout at the top and inside a scanned block: RNG streams of both kinds
SPEC = """\
format: 1
name: drop
seed: 3
inputs: {x: [batch, 8]}
blocks:
  cell:
    inputs: [h]
    layers:
      - fc: {type: Linear, in_features: 8, out_features: 8}
      - drop: {type: Dropout, rate: 0.5}
layers:
  - inp: {type: Linear, in_features: 8, out_features: 8}
  - drop: {type: Dropout, rate: 0.5}
  - body: {type: cell, repeat: 3, scan: true}
  - out: {type: Linear, in_features: 8, out_features: 2{lora}}
weights:
  map:
    inp.weight: {to: inp/kernel, transforms: [transpose]}
    inp.bias: inp/bias
    body.{i}.weight: {to: "body/{i}/fc/kernel", transforms: [transpose]}
    body.{i}.bias: "body/{i}/fc/bias"
    out.weight: {to: out/kernel, transforms: [transpose]}
    out.bias: out/bias
"""


def _torch_named(rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = {"inp.weight": rng.standard_normal((8, 8)), "inp.bias": rng.standard_normal(8), "out.weight": rng.standard_normal((2, 8))}
    t["out.bias"] = rng.standard_normal(2)
    for i in range(3):
        t[f"body.{i}.weight"], t[f"body.{i}.bias"] = rng.standard_normal((8, 8)), rng.standard_normal(8)
    return {k: v.astype(np.float32) for k, v in t.items()}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("stream")
    (d / "drop.yaml").write_text(SPEC.replace("{lora}", ""))
    (d / "lora.yaml").write_text(SPEC.replace("{lora}", ", lora: {rank: 2}"))
    save_file(_torch_named(np.random.default_rng(0)), str(d / "model.safetensors"))
    return {"plain": d / "drop.yaml", "lora": d / "lora.yaml", "weights": d / "model.safetensors"}


def _everything(model: nnx.Module) -> dict[str, np.ndarray]:
    """Every variable, RNG keys and counts included, as host arrays."""
    out = {}
    for path, var in nnx.to_flat_state(nnx.state(model)):
        value = var.get_value()
        if jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
            value = jax.random.key_data(value)
        out["/".join(map(str, path))] = np.asarray(value)
    return out


def _reference(spec: Path, weights: Path) -> nnx.Module:
    """The normal build (random initialisation), then the file loaded into it."""
    program = pipeline.compile(spec)
    model = pipeline.allocate(program)  # no weights in the options: random init
    return load_weights(model, weights, program=program)


@pytest.mark.parametrize("which", ["plain", "lora"])
def test_same_module_as_build_then_load(files: dict[str, Path], which: str) -> None:
    want = _reference(files[which], files["weights"])
    got = nnx_build.build(files[which], weights=files["weights"])
    w, g = _everything(want), _everything(got)
    assert g.keys() == w.keys()
    assert any("rngs" in k for k in w) and (which == "plain" or "out/lora_a" in w)
    for k in w:
        assert g[k].dtype == w[k].dtype and np.array_equal(g[k], w[k]), k
    if which == "lora":  # the adapter is its initialiser's draw, not zeros, and not from the file
        assert np.abs(g["out/lora_a"]).sum() > 0
    # train mode: Dropout draws from the streams; three calls in a row stay identical
    x = np.linspace(-1, 1, 32, dtype=np.float32).reshape(4, 8)
    want.train()
    got.train()
    for _ in range(3):
        a, b = np.asarray(want(x)), np.asarray(got(x))
        np.testing.assert_array_equal(b, a)
    assert not np.array_equal(np.asarray(want(x)), np.asarray(want(x)))  # dropout is live: masks change per call


def test_user_rngs_advance_as_in_a_normal_build(files: dict[str, Path]) -> None:
    r_normal, r_loaded = nnx.Rngs(11), nnx.Rngs(11)
    nnx_build.build(files["plain"], rngs=r_normal)
    nnx_build.build(files["plain"], rngs=r_loaded, weights=files["weights"])
    w, g = _everything(r_normal), _everything(r_loaded)
    assert g.keys() == w.keys() and all(np.array_equal(g[k], w[k]) for k in w)
    assert int(r_normal.params.count[...]) > 0


def test_errors_come_before_anything_is_built(files: dict[str, Path], tmp_path: Path) -> None:
    tensors = _torch_named(np.random.default_rng(0))
    tensors["out.weight"] = tensors["out.weight"][:, :5]
    save_file(tensors, str(tmp_path / "bad.safetensors"))
    with pytest.raises(nnx_build.SpecErrors, match=r"weights-shape.*out\.weight"):
        nnx_build.build(files["plain"], weights=tmp_path / "bad.safetensors")


CHILD = """
import json, sys
import numpy as np
import jax, flax.nnx, safetensors
import nnx_build, nnx_build.pipeline, nnx_build.weights
from nnx_build.memory import peak_rss_mb
jax.block_until_ready(jax.numpy.zeros(1))  # the backend is up
before = peak_rss_mb()
model = nnx_build.build(sys.argv[1], weights=sys.argv[2])
print(json.dumps({"before": before, "peak": peak_rss_mb()}))
"""

WIDE = """\
format: 1
name: wide
inputs: {{x: [batch, {w}]}}
layers:
  - blk: {{type: Linear, in_features: {w}, out_features: {w}, repeat: {n}, scan: true}}
weights:
  map:
    blk.{{i}}.weight: {{to: "blk/{{i}}/kernel", transforms: [transpose]}}
    blk.{{i}}.bias: blk/{{i}}/bias
"""


@pytest.mark.slow
def test_peak_memory_is_about_the_weights(tmp_path: Path) -> None:
    # 12 x 1024 x 1024 float32 = 50 MB, beyond what the imports hold
    w, n = 1024, 12
    (tmp_path / "wide.yaml").write_text(WIDE.format(w=w, n=n))
    rng = np.random.default_rng(0)
    tensors = {}
    for i in range(n):
        tensors[f"blk.{i}.weight"] = rng.standard_normal((w, w), dtype=np.float32)
        tensors[f"blk.{i}.bias"] = np.zeros(w, np.float32)
    nbytes = sum(t.nbytes for t in tensors.values())
    save_file(tensors, str(tmp_path / "w.safetensors"))
    del tensors
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "wide.yaml"), str(tmp_path / "w.safetensors")],
        capture_output=True, text=True, check=True, env={"JAX_PLATFORMS": "cpu", "PATH": ""},
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    extra = (got["peak"] - got["before"]) * 2**20
    # generous: the weights, one tensor, JAX's compilation (~1.8x here); a random initialisation first: ~6x
    assert extra < 3.0 * nbytes, (got, nbytes)


def test_export_and_pipeline_builds_are_filled_from_the_file(files: dict[str, Path]) -> None:
    # the model export makes, and allocate then load_weights (as nnx-build train does), come from the file
    from nnx_build.exporters.entries import from_spec
    from nnx_build.weights import built_from

    subject = from_spec(files["plain"], None, files["weights"])
    assert built_from(subject.model) == str(files["weights"])
    want = _everything(_reference(files["plain"], files["weights"]))
    got = _everything(subject.model)
    assert all(np.array_equal(got[k], want[k]) for k in want)
    options = pipeline.make_options(weights=files["weights"])
    program = pipeline.compile(files["plain"], options)
    model = pipeline.load_weights(pipeline.allocate(program, options), options, program)
    assert built_from(model) == str(files["weights"])
