"""Fixtures: small data files for the training tests (the digits run is in test_digits.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from train_helpers import cls_arrays, reg_arrays


@pytest.fixture
def reg_npz(tmp_path: Path) -> Path:
    path = tmp_path / "reg.npz"
    np.savez(path, **reg_arrays())
    return path


@pytest.fixture
def cls_npz(tmp_path: Path) -> Path:
    path = tmp_path / "cls.npz"
    np.savez(path, **cls_arrays())
    return path
