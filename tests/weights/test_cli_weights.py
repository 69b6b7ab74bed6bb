"""``--weights`` on ``nnx-build test`` and ``nnx-build bench``: the cases and timings run on the file's weights."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from nnx_build import pipeline
from nnx_build.cli import main

SPEC = """\
format: 1
name: lin
seed: 0
inputs:
  x: {shape: [batch, 3], dtype: float32}
layers:
  - out: {type: Linear, in_features: 3, out_features: 2}
outputs: [out]
weights:
  map:
    out.weight: {to: out/kernel, transforms: [transpose]}
    out.bias: out/bias
"""

GOLDEN = """\
tests:
  - name: golden
    golden: {file: lin.npz, rtol: 1.0e-6, atol: 1.0e-6}
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(1)
    weight, bias = rng.standard_normal((2, 3)).astype(np.float32), rng.standard_normal(2).astype(np.float32)  # torch [out, in]
    save_file({"out.weight": weight, "out.bias": bias}, str(d / "model.safetensors"))
    x = rng.standard_normal((4, 3)).astype(np.float32)
    np.savez(d / "lin.npz", **{"inputs/x": x, "outputs/out": x @ weight.T + bias})  # the golden, by NumPy
    (d / "lin.yaml").write_text(SPEC + GOLDEN)
    return {"spec": d / "lin.yaml", "weights": d / "model.safetensors", "dir": d}


def test_spec_tests_run_on_the_weights(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(files["spec"]), "--weights", str(files["weights"])]) == 0
    assert "1 passed" in capsys.readouterr().out
    assert main(["test", str(files["spec"])]) == 1  # random weights: the golden differs


def test_spec_tests_report_weights_that_do_not_fit(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_file({"out.weight": np.zeros((2, 4), np.float32), "out.bias": np.zeros(2, np.float32)}, str(tmp_path / "bad.safetensors"))
    assert main(["test", str(files["spec"]), "--weights", str(tmp_path / "bad.safetensors")]) == 1
    assert "weights-shape" in capsys.readouterr().out


def test_bench_runs_on_the_weights(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[pipeline.Built] = []
    real = pipeline.build

    def spy(*args: object, **kwargs: object) -> pipeline.Built:
        built.append(real(*args, **kwargs))  # type: ignore[arg-type]
        return built[-1]

    monkeypatch.setattr(pipeline, "build", spy)
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(["bench", str(files["spec"]), "--weights", str(files["weights"]), "--targets", "fast_path",
                   "--rounds", "3", "--warmup", "1", "--json"])
    assert rc == 0 and "fast_path" in json.loads(buf.getvalue().strip().splitlines()[-1])["results"]
    from safetensors.numpy import load_file

    want = load_file(str(files["weights"]))
    (b,) = built
    np.testing.assert_array_equal(np.asarray(b.model.out.kernel[...]), want["out.weight"].T)
    np.testing.assert_array_equal(np.asarray(b.model.out.bias[...]), want["out.bias"])


def test_bench_refuses_weights_that_do_not_fit(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_file({"out.weight": np.zeros((2, 3), np.float32)}, str(tmp_path / "short.safetensors"))
    assert main(["bench", str(files["spec"]), "--weights", str(tmp_path / "short.safetensors"), "--targets", "fast_path"]) == 2
    err = capsys.readouterr().err
    assert "weights-missing" in err and "out.bias" in err
