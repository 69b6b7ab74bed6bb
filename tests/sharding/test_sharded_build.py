"""The sharded build on 8 simulated CPU devices, in a subprocess (this process has one device).

The child builds a spec on a ``data=2,model=4`` mesh, reports each variable's addressable
shards and writes the gathered values; this process builds the same spec on its one
device and compares.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from nnx_build import pipeline

SPEC = """\
format: 1
name: shard_me
seed: 3
inputs: {x: [batch, 16]}
mesh:
  axes: {data: 2, model: 4}
  rules: [[embed, null], [mlp, model], [batch, data]]
variables:
  table: {shape: [8, 16], init: {type: normal, stddev: 0.02}, sharding: [mlp, embed]}
blocks:
  B:
    layers:
      - fc: {type: Linear, in_features: 16, out_features: 32, sharding: {kernel: [embed, mlp], bias: [mlp]}}
      - relu
      - proj: {type: Linear, in_features: 32, out_features: 16, sharding: {kernel: [mlp, embed]}}
layers:
  - stack: {type: B, repeat: 2, scan: true}
  - out: {type: Linear, in_features: 16, out_features: 4}
"""

CHILD = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    from flax import nnx
    from nnx_build import pipeline
    spec, out = sys.argv[1], sys.argv[2]
    built = pipeline.build(spec)
    shards, values = {}, {}
    for path, var in nnx.to_flat_state(nnx.state(built.model)):
        if isinstance(var, nnx.RngState):
            continue
        a = var.get_value()
        name = ".".join(str(p) for p in path)
        shards[name] = {
            "shape": list(a.shape),
            "nbytes": int(a.nbytes),
            "shards": [[s.device.id, int(s.data.nbytes), list(s.data.shape)] for s in a.addressable_shards],
            "spec": str(a.sharding.spec),
        }
        values[name] = np.asarray(a)
    np.savez(out, **values)
    y = built.model(np.ones((4, 16), np.float32))
    print(json.dumps({"devices": jax.device_count(), "vars": shards, "forward": np.asarray(y).tolist()}))
    """
)


@pytest.fixture(scope="module")
def child(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    root = tmp_path_factory.mktemp("sharded")
    spec = root / "shard_me.yaml"
    spec.write_text(SPEC)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, "-c", CHILD, str(spec), str(root / "v.npz")], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    values = dict(np.load(root / "v.npz"))
    return spec, report, values


# a variable split 4 ways along `model`, as the rules say, and the one left whole
SPLIT = {
    "table": 0,  # [mlp, embed] -> (model, None)
    "stack.fc.kernel": 2,  # stacked (2, 16, 32), [embed, mlp] -> (None, None, model)
    "stack.fc.bias": 1,
    "stack.proj.kernel": 1,
}


@pytest.mark.slow
def test_no_device_holds_a_full_copy_of_a_sharded_variable(child: tuple[Path, dict, dict]) -> None:
    _, report, _ = child
    assert report["devices"] == 8
    for name, axis in SPLIT.items():
        v = report["vars"][name]
        assert len(v["shards"]) == 8, name
        for _, nbytes, shape in v["shards"]:
            assert nbytes == v["nbytes"] // 4, (name, v)
            want = list(v["shape"])
            want[axis] //= 4
            assert shape == want, (name, shape)
    # not annotated: replicated, a full copy on every device
    for name in ("out.kernel", "out.bias", "stack.proj.bias"):
        v = report["vars"][name]
        assert all(nbytes == v["nbytes"] for _, nbytes, _ in v["shards"]), name


@pytest.mark.slow
def test_same_seed_same_values_as_one_device(child: tuple[Path, dict, dict]) -> None:
    spec, report, values = child
    # this process has one device; without its mesh: section the spec is built as always
    plain = SPEC.replace(SPEC[SPEC.index("mesh:"):SPEC.index("variables:")], "")
    assert "mesh" not in plain
    built = pipeline.build(plain)
    from flax import nnx

    ref = {
        ".".join(str(p) for p in path): np.asarray(var.get_value())
        for path, var in nnx.to_flat_state(nnx.state(built.model))
        if not isinstance(var, nnx.RngState)
    }
    assert set(ref) == set(values)
    for name, value in ref.items():
        # the random bits are the same; XLA fusing an initializer's arithmetic (normal:
        # erfinv and the scale) inside jit may round the last bit differently
        ulps = np.abs(values[name] - value) / np.spacing(np.abs(value).astype(value.dtype))
        assert ulps.max(initial=0) <= 1, (name, float(ulps.max()))
    y = np.asarray(built.model(np.ones((4, 16), np.float32)))
    np.testing.assert_allclose(np.asarray(report["forward"]), y, rtol=1e-5, atol=1e-6)
