"""Sharded training agrees with one device: ``data=8`` (data parallel), ``data=2,model=4``
(tensor parallel over ``model``) and ``data=2,model=2`` (4 of the devices) on 8 simulated
CPU devices, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

SPEC = """\
format: 1
name: mlp_sharded
seed: 0
inputs: {x: [batch, 16]}
mesh:
  axes: {data: -1, model: 1}
  rules: [[batch, data], [embed, null], [mlp, model]]
layers:
  - fc: {type: Linear, in_features: 16, out_features: 32, sharding: {kernel: [embed, mlp], bias: [mlp]}}
  - relu
  - out: {type: Linear, in_features: 32, out_features: 4, sharding: {kernel: [mlp, embed]}}
train:
  loss: mean_squared_error
  optimizer: {type: adamw, learning_rate: 0.01}
  batch_size: 16
  epochs: 3
  eval_split: 0.25
"""

CHILD = textwrap.dedent(
    """
    import json, sys
    import jax
    from nnx_build import pipeline
    from nnx_build.sharding import parse_mesh
    from nnx_build.training import prepare
    spec, data = sys.argv[1], sys.argv[2]
    out = {}
    for mesh in ("data=8", "data=2,model=4", "data=2,model=2"):  # the last: 4 of the 8 devices
        trainer = prepare(spec, data, options=pipeline.make_options(mesh=parse_mesh(mesh)))
        result = trainer.fit()
        kernel = trainer.state.params["fc/kernel"]
        slots = [leaf for leaf in jax.tree.leaves(trainer.state.opt_state) if leaf.shape == kernel.shape]
        out[mesh] = {
            "history": result.history,
            "kernel_shard": list(kernel.addressable_shards[0].data.shape),
            "slot_shards": [list(s.addressable_shards[0].data.shape) for s in slots],
            "data_read": result.data_read,
            "kernel_devices": sorted(d.id for d in kernel.sharding.device_set),
        }
    # a batch the data axes cannot split evenly is refused before training
    odd = spec.replace(".yaml", "_odd.yaml")
    open(odd, "w").write(open(spec).read().replace("batch_size: 16", "batch_size: 12"))
    try:
        prepare(odd, data, options=pipeline.make_options(mesh=parse_mesh("data=8")))
        out["odd"] = "accepted"
    except Exception as e:
        out["odd"] = str(e)
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("sharded_train")
    spec = root / "spec.yaml"
    spec.write_text(SPEC)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 16)).astype(np.float32)
    w = rng.standard_normal((16, 4)).astype(np.float32)
    np.savez(root / "data.npz", x=x, y=np.tanh(x @ w))
    return spec, root / "data.npz"


@pytest.mark.slow
def test_losses_agree_with_one_device(files: tuple[Path, Path]) -> None:
    from nnx_build.training import prepare

    spec, data = files
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, "-c", CHILD, str(spec), str(data)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = json.loads(r.stdout.strip().splitlines()[-1])
    odd = runs.pop("odd")
    assert "train.batch_size 12 is not divisible by the 8 devices the batch is split over" in odd, odd

    one = prepare(spec, data).fit().history  # this process: one device, the plain step
    # tensor parallel: the kernel and its two adamw slots are split 4 ways along `model`
    assert runs["data=2,model=4"]["kernel_shard"] == [16, 8]
    assert runs["data=2,model=4"]["slot_shards"] == [[16, 8], [16, 8]]
    assert runs["data=8"]["kernel_shard"] == [16, 32]  # data parallel: weights replicated
    # a mesh smaller than the machine runs on its first devices
    assert runs["data=2,model=2"]["kernel_shard"] == [16, 16]
    assert runs["data=2,model=2"]["kernel_devices"] == [0, 1, 2, 3]
    assert runs["data=8"]["kernel_devices"] == list(range(8))
    # one process reads every row of each batch once, the 4 copies along `model` included:
    # 3 epochs of 96 training and 32 held-out rows (128 examples, eval_split 0.25)
    for mesh in ("data=8", "data=2,model=4", "data=2,model=2"):
        read = runs[mesh].pop("data_read")
        assert read == {"process": 0, "processes": 1, "rows": 384, "bytes": 384 * (16 + 4) * 4, "batch_rows": 384}, read
    worst = 0.0
    for mesh, run in runs.items():
        assert len(run["history"]) == len(one) == 3, mesh
        for a, b in zip(run["history"], one, strict=True):
            for split in ("train", "eval"):
                got, want = a[split]["loss"], b[split]["loss"]
                worst = max(worst, abs(got - want) / abs(want))
    print(f"largest relative loss difference: {worst:.2e}")
    assert worst < 1e-5, worst
