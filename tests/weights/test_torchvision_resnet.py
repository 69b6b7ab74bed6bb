"""A torchvision-style ResNet checkpoint (OIHW convs, BatchNorm running statistics) through a mapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

import nnx_build
from nnx_build.errors import SpecErrors
from nnx_build.fastpath import fast_forward, flat_weights

SPEC = """\
format: 1
name: tiny_resnet
inputs: {x: [batch, 6, 6, 3]}
blocks:
  BasicBlock:
    args: {c: int}
    layers:
      - conv1: {type: Conv, in_features: "${c}", out_features: "${c}", kernel_size: [3, 3], padding: SAME, use_bias: false}
      - bn1: {type: BatchNorm, num_features: "${c}", epsilon: 1.0e-5}
      - relu
      - conv2: {type: Conv, in_features: "${c}", out_features: "${c}", kernel_size: [3, 3], padding: SAME, use_bias: false}
      - bn2: {type: BatchNorm, num_features: "${c}", epsilon: 1.0e-5}
      - res: {type: add, in: [x, bn2]}
      - relu
layers:
  - conv1: {type: Conv, in_features: 3, out_features: 4, kernel_size: [3, 3], padding: SAME, use_bias: false}
  - bn1: {type: BatchNorm, num_features: 4, epsilon: 1.0e-5}
  - relu
  - layer1: {type: BasicBlock, c: 4, repeat: 2}
  - pool: {type: mean, axis: [1, 2]}
  - fc: {type: Linear, in_features: 4, out_features: 5}
weights:
  ignore: ["bn1.num_batches_tracked", "layer1.{i}.bn{j}.num_batches_tracked"]
  map:
    conv1.weight: {to: conv1/kernel, transforms: [oihw_to_hwio]}
    bn1.weight: bn1/scale
    bn1.bias: bn1/bias
    bn1.running_mean: bn1/mean
    bn1.running_var: bn1/var
    layer1.{i}.conv{j}.weight: {to: "layer1/{i}/conv{j}/kernel", transforms: [oihw_to_hwio]}
    layer1.{i}.bn{j}.weight: layer1/{i}/bn{j}/scale
    layer1.{i}.bn{j}.bias: layer1/{i}/bn{j}/bias
    layer1.{i}.bn{j}.running_mean: layer1/{i}/bn{j}/mean
    layer1.{i}.bn{j}.running_var: layer1/{i}/bn{j}/var
    fc.weight: {to: fc/kernel, transforms: [transpose]}
    fc.bias: fc/bias
"""


def torchvision_state(seed: int = 0) -> dict[str, np.ndarray]:
    """A state dict as torchvision's ResNet names and shapes it (OIHW kernels, [out, in] fc)."""
    rng = np.random.default_rng(seed)

    def bn(prefix: str, c: int) -> dict[str, np.ndarray]:
        return {
            f"{prefix}.weight": (1 + 0.2 * rng.standard_normal(c)).astype(np.float32),
            f"{prefix}.bias": (0.2 * rng.standard_normal(c)).astype(np.float32),
            f"{prefix}.running_mean": (0.3 * rng.standard_normal(c)).astype(np.float32),
            f"{prefix}.running_var": rng.uniform(0.5, 2.0, c).astype(np.float32),
            f"{prefix}.num_batches_tracked": np.array(100, np.int64),
        }

    w = {"conv1.weight": (0.3 * rng.standard_normal((4, 3, 3, 3))).astype(np.float32), **bn("bn1", 4)}
    for i in range(2):
        for j in (1, 2):
            w[f"layer1.{i}.conv{j}.weight"] = (0.3 * rng.standard_normal((4, 4, 3, 3))).astype(np.float32)
            w.update(bn(f"layer1.{i}.bn{j}", 4))
    w["fc.weight"] = rng.standard_normal((5, 4)).astype(np.float32)
    w["fc.bias"] = rng.standard_normal(5).astype(np.float32)
    return w


def _conv(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """torch Conv2d, NCHW, 3x3, padding 1, no bias: out[n, o, y, x] = sum x[n, i, y+dy, x+dx] * k[o, i, dy, dx]."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    h, w = x.shape[2:]
    return sum(np.einsum("nihw,oi->nohw", xp[:, :, dy : dy + h, dx : dx + w], k[:, :, dy, dx]) for dy in range(3) for dx in range(3))


def _bn(x: np.ndarray, s: dict[str, np.ndarray], p: str) -> np.ndarray:
    """torch BatchNorm2d in eval mode."""
    shape = (1, -1, 1, 1)
    return (x - s[f"{p}.running_mean"].reshape(shape)) / np.sqrt(s[f"{p}.running_var"].reshape(shape) + 1e-5) * s[
        f"{p}.weight"
    ].reshape(shape) + s[f"{p}.bias"].reshape(shape)


def torch_resnet_forward(s: dict[str, np.ndarray], x_nhwc: np.ndarray) -> np.ndarray:
    s = {k: v.astype(np.float64) for k, v in s.items()}
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    h = relu(_bn(_conv(x_nhwc.transpose(0, 3, 1, 2).astype(np.float64), s["conv1.weight"]), s, "bn1"))
    for i in range(2):
        p = f"layer1.{i}"
        y = relu(_bn(_conv(h, s[f"{p}.conv1.weight"]), s, f"{p}.bn1"))
        h = relu(_bn(_conv(y, s[f"{p}.conv2.weight"]), s, f"{p}.bn2") + h)
    return h.mean(axis=(2, 3)) @ s["fc.weight"].T + s["fc.bias"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("resnet")
    (d / "resnet.yaml").write_text(SPEC)
    save_file(torchvision_state(), str(d / "model.safetensors"))
    return d / "resnet.yaml", d / "model.safetensors"


def test_matches_the_torch_forward_with_running_statistics(files: tuple[Path, Path]) -> None:
    spec, path = files
    model = nnx_build.build(spec, weights=path)
    weights = flat_weights(model)
    np.testing.assert_array_equal(np.asarray(weights["layer1/1/bn2/mean"]), torchvision_state()["layer1.1.bn2.running_mean"])
    x = np.random.default_rng(9).standard_normal((2, 6, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(fast_forward(model)(x)), torch_resnet_forward(torchvision_state(), x), rtol=1e-4, atol=1e-4)


def test_a_missing_running_var_is_located(files: tuple[Path, Path], tmp_path: Path) -> None:
    spec, _ = files
    state = torchvision_state()
    del state["layer1.0.bn2.running_var"]
    save_file(state, str(tmp_path / "partial.safetensors"))
    with pytest.raises(SpecErrors) as info:
        nnx_build.build(spec, weights=tmp_path / "partial.safetensors")
    assert info.value.codes == ["weights-missing"]
    (error,) = info.value.errors
    assert error.loc.line == SPEC.splitlines().index("    layer1.{i}.bn{j}.running_var: layer1/{i}/bn{j}/var") + 1
    assert "'layer1.0.bn2.running_var'" in error.message and "'layer1/0/bn2/var'" in error.message
