"""The spec tests' ``deterministic: true`` check fails when the model is not reproducible.

Two layers registered here break reproducibility on purpose: one draws its weight from
an unseeded numpy generator (the weights differ between two builds with the same seed),
one carries a build counter into its output (equal weights, different outputs). A spec
using either must fail the check, located at the case, naming what differed; the same
spec without ``deterministic: true`` passes, and a reproducible model with Dropout in
train mode passes the check.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
from flax import nnx

import nnx_build
from nnx_build.cli import main
from nnx_build.schemas.common import Config

_COUNTER = itertools.count(1)


class NoisyWeightConfig(Config):
    type: Literal["bite>NoisyWeight"] = "bite>NoisyWeight"


class NoisyWeight(nnx.Module):
    def __init__(self) -> None:
        self.w = nnx.Param(np.random.default_rng().normal(size=(3,)).astype(np.float32))  # unseeded on purpose

    def __call__(self, x: Any) -> Any:
        return x * self.w[...]


class CountedConfig(Config):
    type: Literal["bite>Counted"] = "bite>Counted"


class Counted(nnx.Module):
    def __init__(self) -> None:
        self.offset = float(next(_COUNTER))  # a static attribute that differs build to build

    def __call__(self, x: Any) -> Any:
        return x + self.offset


@pytest.fixture(autouse=True)
def _layers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registers the two layers for one test; the registry is restored afterwards, so the
    catalogue other tests (and the generated docs) see is unchanged."""
    from nnx_build import layer_table, registry

    registry.names()  # the built-in catalogue is loaded into the table that is restored
    monkeypatch.setattr(layer_table, "_TABLE", {**layer_table._TABLE})
    nnx_build.register("bite>NoisyWeight", NoisyWeightConfig, lambda cfg, *, rngs: NoisyWeight())
    nnx_build.register("bite>Counted", CountedConfig, lambda cfg, *, rngs: Counted())


def _spec(layer: str, deterministic: bool, mode: str | None = None) -> str:
    return (
        "format: 1\nname: m\nseed: 0\n"
        "inputs:\n  x: [batch, 3]\n"
        f"layers:\n  - n: {layer}\n"
        "outputs: [n]\n"
        "tests:\n"
        "  - name: repro\n"
        "    inputs: {x: [2, 3]}\n"
        "    outputs:\n      n: {shape: [2, 3], dtype: float32}\n"
        + (f"    mode: {mode}\n" if mode else "")
        + ("    deterministic: true\n" if deterministic else "")
    )


def _run(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``nnx-build test SPEC`` (the console script's entry point, in this process: the test layers are registered here)."""
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    capsys.readouterr()
    code = main(["test", str(path)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        ('{type: "bite>NoisyWeight"}', "variable 'n/w' differs between two builds with seed 0"),
        ('{type: "bite>Counted"}', "output 'n' differs between two builds with seed 0"),
    ],
    ids=["weights", "outputs"],
)
def test_a_model_that_is_not_reproducible_fails_the_check(tmp_path: Path, capsys: pytest.CaptureFixture[str], layer: str, expected: str) -> None:
    code, out = _run(tmp_path, _spec(layer, deterministic=True), capsys)
    assert code == 1, out
    assert "the same seed did not give the same model" in out, out
    assert expected in out, out
    assert "deterministic" in out and "Traceback" not in out
    # the same model without the check passes: the failure came from the deterministic check
    code, out = _run(tmp_path, _spec(layer, deterministic=False), capsys)
    assert code == 0, out


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_a_reproducible_model_passes_the_check(tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: str) -> None:
    # Dropout draws from the model's seeded rng stream: two builds with one seed agree in train mode too
    code, out = _run(tmp_path, _spec("{type: Dropout, rate: 0.5}", deterministic=True, mode=mode), capsys)
    assert code == 0, out
