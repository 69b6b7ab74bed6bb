"""An uncompressed ``.npz`` is memory-mapped member by member (so a process reading some
rows reads only their pages); a compressed one is read whole; the values are the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnx_build.training.data import _read_npz


def test_stored_members_are_memory_mapped_compressed_ones_read(tmp_path: Path) -> None:
    x = np.arange(60, dtype=np.float32).reshape(20, 3)
    y = np.asfortranarray(np.arange(40, dtype=np.int64).reshape(20, 2))
    np.savez(tmp_path / "stored.npz", x=x, y=y, empty=np.zeros((0, 3), np.float32))
    np.savez_compressed(tmp_path / "compressed.npz", x=x, y=y)

    stored = _read_npz(tmp_path / "stored.npz")
    assert isinstance(stored["x"], np.memmap) and isinstance(stored["y"], np.memmap)
    assert stored["empty"].shape == (0, 3) and not isinstance(stored["empty"], np.memmap)  # nothing to map
    compressed = _read_npz(tmp_path / "compressed.npz")
    assert not any(isinstance(v, np.memmap) for v in compressed.values())
    for arrays in (stored, compressed):
        np.testing.assert_array_equal(arrays["x"], x)
        np.testing.assert_array_equal(arrays["y"], y)  # Fortran order kept
        np.testing.assert_array_equal(arrays["x"][[7, 2, 19]], x[[7, 2, 19]])
