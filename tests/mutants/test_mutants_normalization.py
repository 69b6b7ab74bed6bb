"""Normalisation layers' checks and GroupNorm's groups (mutants of layers/normalization.py).

Messages word for word; which axis the feature check reads (the last one, BatchNorm's
``axis``, none when RMSNorm / InstanceNorm normalise other ``feature_axes``); and
GroupNorm given ``group_size`` alone, compared with ``nnx.GroupNorm`` written by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
from flax import nnx

import nnx_build
from nnx_build import SpecErrors


def spec(shape: str, layer: str) -> str:
    return f"format: 1\nname: m\ninputs: {{x: {shape}}}\nlayers:\n  - n: {layer}\n"


def refused(shape: str, layer: str) -> str:
    with pytest.raises(SpecErrors) as info:
        nnx_build.check(spec(shape, layer))
    (error,) = info.value.errors
    return f"{error.code}: {error.message}"


def mismatch(kind: str, n: int, where: str, shape: str, would: int) -> str:
    return (f"shape-mismatch: step 'n' ({kind}) expects num_features={n} to match {where} of its input, received shape {shape} "
            f"(num_features would be {would}); set num_features: {would} (from 'x' {shape} float32)")


def test_batch_norm_reads_its_axis() -> None:
    assert refused("[batch, 4]", "{type: BatchNorm, num_features: 6}") == mismatch("BatchNorm", 6, "the last dimension", "(batch, 4)", 4)
    assert refused("[batch, 6, 4]", "{type: BatchNorm, num_features: 4, axis: 1}") == mismatch("BatchNorm", 4, "axis 1", "(batch, 6, 4)", 6)
    assert nnx_build.check(spec("[batch, 4, 6]", "{type: BatchNorm, num_features: 4, axis: 1}")).total_params == 4 * 4


@pytest.mark.parametrize("kind", ["RMSNorm", "InstanceNorm"])
def test_the_feature_check_follows_feature_axes(kind: str) -> None:
    assert refused("[batch, 2, 4]", f"{{type: {kind}, num_features: 6}}") == mismatch(kind, 6, "the last dimension", "(batch, 2, 4)", 4)
    # features on axis 1: the last dimension (4) is not checked against num_features
    report = nnx_build.check(spec("[batch, 6, 4]", f"{{type: {kind}, num_features: 6, feature_axes: 1}}"))
    assert report.total_params == (6 if kind == "RMSNorm" else 12)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("num_groups: 4", "num_features (6) must be divisible by num_groups (4)"),
        ("num_groups: 3, group_size: 2", "give num_groups or group_size, not both (group_size needs num_groups: null)"),
        ("num_groups: null", "give num_groups or group_size"),
        ("num_groups: null, group_size: 4", "num_features (6) must be divisible by group_size (4)"),
    ],
)
def test_group_norm_groups_are_checked(fields: str, message: str) -> None:
    assert refused("[batch, 6]", f"{{type: GroupNorm, num_features: 6, {fields}}}") == f"bad-value: value: {message}"


def test_group_norm_defaults_to_32_groups() -> None:
    assert refused("[batch, 48]", "{type: GroupNorm, num_features: 48}") == "bad-value: value: num_features (48) must be divisible by num_groups (32)"
    assert nnx_build.check(spec("[batch, 64]", "{type: GroupNorm, num_features: 64}")).total_params == 128


@pytest.mark.parametrize("fields", ["group_size: 2", "num_groups: null, group_size: 2"])
def test_group_norm_by_group_size_matches_nnx(fields: str) -> None:
    model = nnx_build.build(spec("[batch, 5, 6]", f"{{type: GroupNorm, num_features: 6, {fields}}}"))
    reference = nnx.GroupNorm(6, num_groups=3, rngs=nnx.Rngs(0))  # 2 channels per group
    x = np.random.default_rng(0).normal(size=(2, 5, 6)).astype(np.float32) * np.arange(1, 7, dtype=np.float32)
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(reference(x)), rtol=1e-5, atol=1e-5)
    assert not np.allclose(np.asarray(reference(x)), np.asarray(nnx.GroupNorm(6, num_groups=2, rngs=nnx.Rngs(0))(x)), atol=1e-3)
