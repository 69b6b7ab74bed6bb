"""``build --weights`` on a mesh: each tensor read from the file goes straight onto its shards,
with no random initialisation first.

One subprocess with 8 simulated CPU devices builds a spec on ``data=2,model=4`` three
times: from a file under the model's own names, from a file under a checkpoint's names
through the spec's ``weights:`` mapping (LoRA adapters over the pretrained base keep
their initialiser), and randomly (the sharded build, the reference for the shardings).
This process builds the same spec without its mesh from the same files, on its one device.
Two processes of 4 devices each train from a weights file as one device does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file, save_file

import nnx_build
from nnx_build import pipeline
from nnx_build.weights import model_variables

from .test_sharded_train import SPEC as TRAIN_SPEC

SPEC = """\
format: 1
name: load_on_shards
seed: 3
inputs: {x: [batch, 16]}
mesh:
  axes: {data: 2, model: 4}
  rules: [[embed, null], [mlp, model], [batch, data]]
blocks:
  B:
    layers:
      - fc: {type: Linear, in_features: 16, out_features: 32, sharding: {kernel: [embed, mlp], bias: [mlp]}}
      - relu
      - proj: {type: Linear, in_features: 32, out_features: 16, sharding: {kernel: [mlp, embed]}}
layers:
  - stack: {type: B, repeat: 2, scan: true}
  - drop: {type: Dropout, rate: 0.5}
  - out: {type: Linear, in_features: 16, out_features: 4, lora: {rank: 2}}
weights:
  map:
    stack.{i}.fc.weight: {to: "stack/{i}/fc/kernel", transforms: [transpose]}
    stack.{i}.fc.bias: "stack/{i}/fc/bias"
    stack.{i}.proj.weight: {to: "stack/{i}/proj/kernel", transforms: [transpose]}
    stack.{i}.proj.bias: "stack/{i}/proj/bias"
    out.weight: {to: out/kernel, transforms: [transpose]}
    out.bias: out/bias
"""
PLAIN = SPEC.replace(SPEC[SPEC.index("mesh:"):SPEC.index("blocks:")], "")  # one device: no mesh, same annotations

CHILD = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    from flax import nnx
    import nnx_build
    from nnx_build.weights import built_from
    spec, own, torch, out = sys.argv[1:5]
    lowered = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/jaxpr_to_mlir_module_duration":
            lowered.append(str(kwargs.get("fun_name", "?")))

    jax.monitoring.register_event_duration_secs_listener(listen)
    builds, report = {}, {"devices": jax.device_count()}
    for name, weights in (("own", own), ("torch", torch), ("random", None)):  # the random build last: nothing of it cached
        before = len(lowered)
        builds[name] = nnx_build.build(spec, weights=weights)
        report[name] = {"lowered": lowered[before:], "built_from": built_from(builds[name]), "vars": {}}
    values = {}
    random = dict(nnx.to_flat_state(nnx.state(builds["random"])))
    for name in ("own", "torch", "random"):
        for path, var in nnx.to_flat_state(nnx.state(builds[name])):
            key = "/".join(map(str, path))
            a = var.get_value()
            ref = random[path].get_value()
            report[name]["vars"][key] = {
                "spec": str(getattr(a.sharding, "spec", a.sharding)),
                "as_random": a.sharding.is_equivalent_to(ref.sharding, a.ndim),
                "shards": sorted([s.device.id, list(s.data.shape)] for s in a.addressable_shards),
            }
            values[f"{name}:{key}"] = np.asarray(jax.random.key_data(a) if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key) else a)
    np.savez(out, **values)
    print(json.dumps(report))
    """
)


def _torch_named(rng: np.random.Generator) -> dict[str, np.ndarray]:
    t: dict[str, np.ndarray] = {}
    for i in range(2):
        t[f"stack.{i}.fc.weight"], t[f"stack.{i}.fc.bias"] = rng.standard_normal((32, 16)), rng.standard_normal(32)
        t[f"stack.{i}.proj.weight"], t[f"stack.{i}.proj.bias"] = rng.standard_normal((16, 32)), rng.standard_normal(16)
    t["out.weight"], t["out.bias"] = rng.standard_normal((4, 16)), rng.standard_normal(4)
    return {k: v.astype(np.float32) for k, v in t.items()}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sharded_load")
    (d / "mesh.yaml").write_text(SPEC)
    (d / "plain.yaml").write_text(PLAIN)
    shapes, _ = model_variables(pipeline.compile(d / "plain.yaml"))
    rng = np.random.default_rng(7)
    # every variable under its own name (LoRA adapters included), values no initialiser draws
    np.savez(d / "own.npz", **{k: rng.standard_normal(shape).astype(dtype) for k, (shape, dtype) in shapes.items()})
    save_file(_torch_named(rng), str(d / "torch.safetensors"))
    return {"mesh": d / "mesh.yaml", "plain": d / "plain.yaml", "own": d / "own.npz", "torch": d / "torch.safetensors"}


@pytest.fixture(scope="module")
def child(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    out = tmp_path_factory.mktemp("sharded_load_out") / "values.npz"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    args = [str(files["mesh"]), str(files["own"]), str(files["torch"]), str(out)]
    r = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    values: dict[str, dict[str, np.ndarray]] = {}
    for k, v in np.load(out).items():
        build, key = k.split(":", 1)
        values.setdefault(build, {})[key] = v
    return report, values


def _everything(model: nnx.Module) -> dict[str, np.ndarray]:
    """Every variable, RNG keys and counts included, as host arrays."""
    out = {}
    for path, var in nnx.to_flat_state(nnx.state(model)):
        a = var.get_value()
        out["/".join(map(str, path))] = np.asarray(jax.random.key_data(a) if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key) else a)
    return out


def test_sharding_annotations_build_from_weights_on_one_device(files: dict[str, Path]) -> None:
    # the abstract module keeps its logical axis names without being placed on a mesh
    got = _everything(nnx_build.build(files["plain"], weights=files["own"]))
    own = dict(np.load(files["own"]))
    assert {k: v for k, v in got.items() if "rngs" not in k}.keys() == own.keys()
    for k, v in own.items():
        assert got[k].dtype == v.dtype and np.array_equal(got[k], v), k


@pytest.mark.slow
@pytest.mark.parametrize("which", ["own", "torch"])
def test_same_bits_as_the_one_device_build(files: dict[str, Path], child: tuple[dict, dict], which: str) -> None:
    report, values = child
    assert report["devices"] == 8
    want = _everything(nnx_build.build(files["plain"], weights=files[which]))
    got = values[which]
    assert got.keys() == want.keys() and any("rngs" in k for k in want)
    for k in want:
        assert got[k].dtype == want[k].dtype and np.array_equal(got[k], want[k]), k
    # and therefore the file's: its own names as they are, a checkpoint's through the mapping (transposed)
    if which == "own":
        for k, v in np.load(files["own"]).items():
            assert np.array_equal(got[k], v), k
    else:
        src = load_file(str(files["torch"]))
        for i in range(2):
            assert np.array_equal(got["stack/fc/kernel"][i], src[f"stack.{i}.fc.weight"].T)
            assert np.array_equal(got["stack/proj/bias"][i], src[f"stack.{i}.proj.bias"])
        assert np.array_equal(got["out/base_module/kernel"], src["out.weight"].T)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["own", "torch"])
def test_each_variable_on_the_shards_of_the_sharded_build(child: tuple[dict, dict], which: str) -> None:
    report, _ = child
    got, random = report[which]["vars"], report["random"]["vars"]
    assert got.keys() == random.keys()
    for k, v in got.items():
        assert v["as_random"], (k, v["spec"], random[k]["spec"])
        assert v["shards"] == random[k]["shards"], k
    # split 4 ways along `model`, copied along `data`: 8 shards of a quarter each (stacked: (2, 16, 32))
    assert [shape for _, shape in got["stack/fc/kernel"]["shards"]] == [[2, 16, 8]] * 8
    assert [shape for _, shape in got["stack/proj/kernel"]["shards"]] == [[2, 8, 16]] * 8
    assert [shape for _, shape in got["drop/rngs/key"]["shards"]] == [[]] * 8  # RNG state replicated on the mesh too


@pytest.mark.slow
def test_no_random_initialisation_ran(files: dict[str, Path], child: tuple[dict, dict]) -> None:
    report, _ = child
    # the sharded build's program (it draws every weight) is lowered when it runs ...
    assert "jit(init_on_shards)" in report["random"]["lowered"]
    for which in ("own", "torch"):
        # ... and not for a build from a file: the abstract build's program (RNG state, adapters) is
        assert "jit(create)" in report[which]["lowered"] and "jit(init_on_shards)" not in report[which]["lowered"], report[which]
        assert report[which]["built_from"] == str(files[which])  # load_weights does not load it again
    # the second build (the process' first programs, such as seeding, lowered already): that one alone
    assert report["torch"]["lowered"] == ["jit(create)"]


@pytest.mark.slow
def test_lora_adapters_keep_their_init(child: tuple[dict, dict]) -> None:
    _, values = child
    got, random = values["torch"], values["random"]
    # the checkpoint has no adapters: they are the sharded build's draws (lora_b zeros), not zeros nor read
    assert np.abs(got["out/lora_a"]).sum() > 0
    assert np.array_equal(got["out/lora_a"], random["out/lora_a"])
    assert np.array_equal(got["out/lora_b"], random["out/lora_b"]) and not got["out/lora_b"].any()
    for k in ("drop/rngs/key", "drop/rngs/count"):
        assert np.array_equal(got[k], random[k]), k


@pytest.mark.slow
def test_two_processes_train_from_weights_like_one_device(tmp_path: Path) -> None:
    # with several processes each puts its own devices' shards; the RNG state (Dropout) too
    from nnx_build.training import prepare

    spec = tmp_path / "drop.yaml"
    spec.write_text(TRAIN_SPEC.replace("  - relu\n", "  - relu\n  - drop: {type: Dropout, rate: 0.1}\n"))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 16)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=np.tanh(x @ rng.standard_normal((16, 4)).astype(np.float32)))
    shapes, _ = model_variables(pipeline.compile(spec))
    np.savez(tmp_path / "w.npz", **{k: rng.standard_normal(shape).astype(dtype) for k, (shape, dtype) in shapes.items()})
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COORDINATOR")}
    env["JAX_PLATFORMS"] = "cpu"
    args = ["launch", "-n", "2", "--devices-per-process", "4", "--", "train", str(spec), "--data", str(tmp_path / "data.npz"),
            "--weights", str(tmp_path / "w.npz"), "--mesh", "data=2,model=4", "--no-progress", "--json"]
    r = subprocess.run([sys.executable, "-m", "nnx_build.cli", *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["data_read"]["processes"] == 2
    want = prepare(spec, tmp_path / "data.npz", options=pipeline.make_options(weights=tmp_path / "w.npz")).fit().history[-1]
    for split in ("train", "eval"):
        a, b = got[split]["loss"], want[split]["loss"]
        assert abs(a - b) <= 1e-5 * abs(b), (split, a, b)
