"""``nnx_build.pipeline``: one function per stage, one Options object, the API entries on top."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import nnx_build
from nnx_build import pipeline
from nnx_build.errors import OutOfMemoryError, SpecErrors
from nnx_build.loader import Limits

SPEC = """\
format: 1
name: two
inputs: {x: [batch, 2]}
layers:
  - linear: {type: Linear, in_features: 2, out_features: 4}
"""  # 12 Params


def test_stages_in_order_give_what_build_gives() -> None:
    options = pipeline.Options(seed=3)
    spec = pipeline.load(SPEC, options)
    program = pipeline.compile(spec, options)
    report = pipeline.check(program, options)
    assert report.params == {"Param": 12}
    model = pipeline.load_weights(pipeline.allocate(program, options, nbytes=report.total_bytes), options)
    other = nnx_build.build(SPEC, seed=3)
    np.testing.assert_array_equal(np.asarray(model.linear.kernel[...]), np.asarray(other.linear.kernel[...]))
    built = pipeline.build(SPEC, options)
    assert built.report is not None and built.report.params == {"Param": 12}
    np.testing.assert_array_equal(np.asarray(built.model.linear.kernel[...]), np.asarray(other.linear.kernel[...]))


def test_options_object_and_keywords_mean_the_same() -> None:
    strict = pipeline.Options(max_params=10)
    for call in (
        lambda: nnx_build.build(SPEC, options=strict),
        lambda: nnx_build.build(SPEC, max_params=10),
        lambda: nnx_build.check(SPEC, options=strict),
        lambda: pipeline.build(SPEC, strict),
    ):
        with pytest.raises(SpecErrors) as info:
            call()
        assert info.value.codes == ["too-many-params"]
    # keywords override the object
    assert nnx_build.check(SPEC, options=strict, max_params=12).total_params == 12
    tight = pipeline.Options(limits=Limits(max_nodes=3))
    with pytest.raises(SpecErrors) as info:
        nnx_build.compile(SPEC, options=tight)
    assert info.value.codes == ["too-many-nodes"]


def test_options_are_frozen_and_replace_skips_none() -> None:
    options = pipeline.Options(max_params=5, seed=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.seed = 2  # type: ignore[misc]
    assert options.replace(seed=None, max_bytes=7) == pipeline.Options(max_params=5, seed=1, max_bytes=7)


def test_allocate_turns_running_out_of_memory_into_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import nnx_build.builder.allocation as allocation  # where allocate looks instantiate_compiled up

    def no_memory(*args: object, **kwargs: object) -> None:
        raise MemoryError("cannot allocate")

    monkeypatch.setattr(allocation, "instantiate_compiled", no_memory)
    with pytest.raises(OutOfMemoryError, match="out of memory allocating the weights of 'two'"):
        nnx_build.build(SPEC)


def test_setup_loads_the_named_plugins_once(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    (tmp_path / "setup_plugin_for_tests.py").write_text("LOADED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    options = pipeline.Options(plugins=("setup_plugin_for_tests",))
    assert pipeline.setup(options) == ["setup_plugin_for_tests"]
    assert "setup_plugin_for_tests" in sys.modules
    assert pipeline.setup(options) == []
    with pytest.raises(nnx_build.NnxBuildError, match="cannot import plugin 'no_such_plugin_for_tests'"):
        nnx_build.check(SPEC, plugins=["no_such_plugin_for_tests"])
