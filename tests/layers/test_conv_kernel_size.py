"""An integer ``kernel_size`` on an input with two or more spatial dims is a located error.

NNX reads ``kernel_size: 7`` as a 1-D window and folds the other spatial dims into the
batch, so the spec would silently build a 1-D convolution.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import nnx_build
from nnx_build import SpecErrors
from nnx_build.cli import main

SPEC = """\
format: 1
name: net
inputs: {{x: [batch, {spatial}3]}}
layers:
  - stem: {{type: {type}, in_features: 3, out_features: 4, kernel_size: {k}}}
"""


@pytest.mark.parametrize("type_", ["Conv", "ConvTranspose"])
def test_integer_kernel_size_on_images_points_at_kernel_size(tmp_path: Path, type_: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = SPEC.format(spatial="8, 8, ", type=type_, k=7)
    path = tmp_path / "net.yaml"
    path.write_text(text)
    line = text.splitlines()[4]
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:5:{line.index('kernel_size') + 1}: error[shape-mismatch]: " in err
    assert "kernel_size: [7, 7]" in err
    assert "Traceback" not in err


def test_three_spatial_dims_suggest_three_sizes() -> None:
    with pytest.raises(SpecErrors) as info:
        nnx_build.check(SPEC.format(spatial="4, 4, 4, ", type="Conv", k=3))
    (e,) = info.value.errors
    assert e.path == ("layers", 0, "kernel_size")
    assert "kernel_size: [3, 3, 3]" in e.message


@pytest.mark.parametrize(("spatial", "k"), [("8, ", 3), ("8, 8, ", "[3, 3]")])
def test_integer_on_one_spatial_dim_and_lists_are_fine(spatial: str, k: object) -> None:
    report = nnx_build.check(SPEC.format(spatial=spatial, type="Conv", k=k))
    assert report.total_params > 0
