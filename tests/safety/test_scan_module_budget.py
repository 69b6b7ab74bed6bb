"""Scanned repeats are one module instance each for ``max_modules``; unscanned ones count ``repeat`` times.

The documented way past the module budget is ``scan: true``: a 20,000-deep scanned
stack (twice the default limit of 10,000 even counted once per layer) must pass ``check``
and the CLI with the default limits, quickly, since its depth is one stacked axis. The
unscanned count follows the formula "each layer and block use, times repeat": a block
use holding one Linear is 2 instances, so ``repeat: n`` is 2n, exactly at the limit
passes and one over is refused.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import nnx_build
from nnx_build import SpecErrors
from nnx_build.cli import main
from nnx_build.loader import Limits

DEPTH = 20_000


def _stack(n: int, scan: bool) -> str:
    return (
        "format: 1\nname: m\ninputs: {x: [batch, 2]}\nblocks:\n  B:\n    layers:\n"
        "      - l: {type: Linear, in_features: 2, out_features: 2}\n"
        f"layers:\n  - b: {{type: B, repeat: {n}{', scan: true' if scan else ''}}}\n"
    )


def test_default_module_limit_is_below_the_depth() -> None:
    assert Limits().max_modules < DEPTH  # else the test below proves nothing


def test_a_20000_deep_scanned_stack_passes_check_with_default_limits() -> None:
    nnx_build.check(_stack(2, scan=True))  # imports and first traces, not what is timed
    t0 = time.perf_counter()
    report = nnx_build.check(_stack(DEPTH, scan=True))
    seconds = time.perf_counter() - t0
    assert report.total_params == DEPTH * (2 * 2 + 2)
    assert seconds < 3.0, f"check of a {DEPTH}-deep scanned stack took {seconds:.1f}s"


def test_the_cli_accepts_it_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "deep.yaml"
    spec.write_text(_stack(DEPTH, scan=True), encoding="utf-8")
    assert main(["check", str(spec)]) == 0, capsys.readouterr().err


def test_the_same_stack_unscanned_is_refused() -> None:
    with pytest.raises(SpecErrors) as info:
        nnx_build.check(_stack(DEPTH, scan=False))
    assert info.value.codes == ["too-many-modules"]
    assert f"spec unrolls to {2 * DEPTH:,} module instances" in info.value.errors[0].message


def test_unscanned_boundary_follows_the_formula() -> None:
    limits = Limits(max_modules=20)
    assert nnx_build.check(_stack(10, scan=False), limits=limits).total_params == 10 * 6  # 2 * 10 = 20: at the limit
    with pytest.raises(SpecErrors) as info:
        nnx_build.check(_stack(11, scan=False), limits=limits)  # 22
    assert info.value.codes == ["too-many-modules"]
    assert "spec unrolls to 22 module instances" in info.value.errors[0].message
    # scanned, the same 11 copies are 2 instances whatever the limit
    assert nnx_build.check(_stack(11, scan=True), limits=Limits(max_modules=2)).total_params == 11 * 6
