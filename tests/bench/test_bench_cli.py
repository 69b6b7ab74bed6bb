"""Smoke test of ``nnx-build bench --json``: keys and positive numbers (no timing assertions)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from nnx_build.cli import main

TINY = """\
format: 1
name: tiny
seed: 0
inputs:
  x: {shape: [batch, 3], dtype: float32}
layers:
  - linear: {type: Linear, in_features: 3, out_features: 4}
  - relu
  - out: {type: Linear, in_features: 4, out_features: 2}
outputs: [out]
"""

TARGETS = ["fast_path", "nnx_jit", "stablehlo", "savedmodel", "onnx"]


@pytest.fixture(scope="module")
def bench_json(tmp_path_factory: pytest.TempPathFactory) -> dict:
    spec = tmp_path_factory.mktemp("bench") / "tiny.yaml"
    spec.write_text(TINY)
    return _run(spec, ["--batch", "3", "--rounds", "3", "--warmup", "1", "--json"])


def _run(spec: Path, args: list[str]) -> dict:
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(["bench", str(spec), *args])
    assert rc == 0
    last = buf.getvalue().strip().splitlines()[-1]
    return json.loads(last)


def _positive(x: object) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


def test_json_has_every_target(bench_json: dict) -> None:
    r = bench_json
    assert r["name"] == "tiny"
    assert r["params"] == 3 * 4 + 4 + 4 * 2 + 2
    assert r["batch"] == 3
    assert r["inputs"] == {"x": {"shape": [3, 3], "dtype": "float32"}}
    assert r["errors"] == {}
    assert r["targets"] == TARGETS
    assert set(r["results"]) == set(TARGETS)
    assert set(r["latency_ratio_to_fast_path"]) == set(TARGETS) - {"fast_path"}


def test_numbers_are_positive(bench_json: dict) -> None:
    for name, res in bench_json["results"].items():
        lat = res["latency"]
        for key in ("median_ms", "p10_ms", "p90_ms"):
            assert _positive(lat[key]), (name, key, lat)
        assert lat["p10_ms"] <= lat["median_ms"] <= lat["p90_ms"]
        assert lat["rounds"] == 3 and lat["calls_per_round"] >= 1
        assert _positive(res["throughput_per_s"]) and _positive(res["calls_per_s"])
        if name != "fast_path":
            assert res["max_abs_err"] < 1e-4, name
    assert all(_positive(v) for v in bench_json["latency_ratio_to_fast_path"].values())
    assert all(v >= 0 for v in bench_json["seconds"].values())
    assert bench_json["machine"]["cpus"] >= 1


def test_selected_targets_and_default_batch(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    r = _run(spec, ["--targets", "nnx_jit", "--rounds", "3", "--warmup", "0", "--json"])
    assert r["targets"] == ["fast_path", "nnx_jit"]
    assert r["batch"] == 1


def test_unknown_target_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    assert main(["bench", str(spec), "--targets", "onnxx"]) == 2
    assert "did you mean 'onnx'" in capsys.readouterr().err
