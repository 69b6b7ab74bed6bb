"""The start-up checks and the data digest split over processes: each "process" (simulated
here by patching the share and the all-gather) reads its share of the rows, and every one
reaches the verdict and the digest a single process reaches. The real two-process run is
in ``tests/sharding/test_process_checks.py``."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest
from train_helpers import CLS_SPEC

from nnx_build.training import TrainError, checks, prepare
from nnx_build.training.data import DataError, Dataset, load_data

SPEC = CLS_SPEC.replace("LOSS", "softmax_cross_entropy_with_integer_labels")
N = 50


def _arrays(**override: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {"x": rng.standard_normal((N, 4)).astype(np.float32), "y": rng.integers(0, 3, N).astype(np.int32), **override}


@pytest.fixture(scope="module")
def trainer() -> Any:
    return prepare(SPEC, _arrays())


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 3 rows (4 x float32 + one int32 = 20 bytes a row): many blocks and chunks per share."""
    monkeypatch.setattr(checks, "BLOCK_BYTES", 60)


def _dataset(trainer: Any, unchecked: dict[str, str] | None = None, **override: np.ndarray) -> Dataset:
    arrays = _arrays(**override)
    stored = {k: v.dtype for k, v in arrays.items()}
    return Dataset(arrays, trainer.data.train_idx, trainer.data.eval_idx, "d.npz", stored, unchecked or {})


class _Gathered(Exception):
    pass


def _verdicts(monkeypatch: pytest.MonkeyPatch, data: Dataset, plan: Any, parts: int) -> list[str]:
    """Each simulated process's error (or "ok"): a first pass collects every process's findings,
    a second gives them all to each process, as the all-gather does."""
    outputs = (jax.ShapeDtypeStruct((N, 3), np.float32),)
    found: list[Any] = []

    def collect(value: Any) -> list[Any]:
        found.append(value)
        raise _Gathered

    verdicts = []
    for gather in (collect, lambda value: list(found)):
        monkeypatch.setattr(checks, "allgather_json", gather)
        verdicts = []
        for part in range(parts):
            monkeypatch.setattr(checks, "process_share", lambda part=part: (part, parts))
            try:
                checks.check_targets(data, plan, outputs)
                verdicts.append("ok")
            except _Gathered:
                pass
            except DataError as e:
                verdicts.append(str(e))
    assert len(found) == parts
    return verdicts


@pytest.mark.usefixtures("small_blocks")
def test_every_share_split_gives_the_single_process_verdict(trainer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    y = _arrays()["y"].copy()
    y[[41, 44, 49]] = [3, -1, 7]  # all in the last third
    data = _dataset(trainer, y=y)
    want = ("d.npz: error[label-range]: target 'y' has 3 label(s) outside [0, 3) (output 'head' has 3 classes), "
            "the first y[41] = 3; labels must be 0 .. 2")
    for parts in (1, 2, 3, 4):
        assert _verdicts(monkeypatch, data, trainer.plan, parts) == [want] * parts, parts
    y[[5, 30]] = 9  # the first in the first share, the count over all shares
    got = _verdicts(monkeypatch, _dataset(trainer, y=y), trainer.plan, 3)
    assert got == [want.replace("3 label(s)", "5 label(s)").replace("y[41] = 3", "y[5] = 9")] * 3
    # float labels: whole numbers everywhere but in the last share -> the probability hint, in every process
    yf = _arrays()["y"].astype(np.float32)
    assert all("y.astype(np.int32)" in v for v in _verdicts(monkeypatch, _dataset(trainer, y=yf), trainer.plan, 3))
    yf[48] = 0.5
    got = _verdicts(monkeypatch, _dataset(trainer, y=yf), trainer.plan, 3)
    assert len(set(got)) == 1 and "they are not whole numbers" in got[0] and "error[label-dtype]" in got[0]
    assert _verdicts(monkeypatch, _dataset(trainer), trainer.plan, 3) == ["ok"] * 3


@pytest.mark.usefixtures("small_blocks")
def test_non_finite_values_left_to_the_checks_read_the_same_as_load_data(
    trainer: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    x = _arrays()["x"].copy()
    x[3, 1], x[37, 2], x[45, 0] = np.nan, np.nan, np.inf  # in the first and the last share
    path = tmp_path / "d.npz"
    np.savez(path, **_arrays(x=x))
    with pytest.raises(DataError) as info:
        load_data(path, trainer.plan)  # one process: load_data checks the whole array itself
    want = str(info.value).replace(str(path), "d.npz")
    assert "3 non-finite value(s), the first nan at index (3, 1)" in want
    data = _dataset(trainer, {"x": "input"}, x=x)
    for parts in (1, 2, 3):
        assert _verdicts(monkeypatch, data, trainer.plan, parts) == [want] * parts


def _by_hand(data: Dataset, rows: int) -> str:
    """The digest as docs/training.md defines it, written out independently of the code."""
    n = len(data.arrays["x"])
    blocks = b"".join(
        hashlib.sha256(data.arrays["x"][b : b + rows].tobytes() + data.arrays["y"][b : b + rows].tobytes()).digest()
        for b in range(0, n, rows)
    )
    head = f"v2|{rows}|x|<f4|{data.arrays['x'].shape}|y|<i4|{data.arrays['y'].shape}|".encode()
    return "v2:" + hashlib.sha256(head + blocks + data.eval_idx.astype(np.int64).tobytes()).hexdigest()[:16]


@pytest.mark.usefixtures("small_blocks")
def test_the_digest_is_the_same_for_any_number_of_processes(trainer: Any) -> None:
    data = _dataset(trainer)
    assert checks.block_rows(data) == 3
    whole = checks.digest_blocks(data)
    assert len(whole) == 17  # 50 rows in blocks of 3
    for parts in (2, 3, 5, 17, 20):
        shares = [checks.digest_blocks(data, i, parts) for i in range(parts)]
        assert sum(len(s) for s in shares) == 17 and max(map(len, shares)) - min(map(len, shares)) <= 1
        assert checks.combine_digest(data, [b for s in shares for b in s]) == checks.data_digest(data)
    assert checks.data_digest(data) == _by_hand(data, 3)
    x = data.arrays["x"].copy()
    x[-1, -1] = np.nextafter(x[-1, -1], np.inf)  # one bit of the last row
    assert checks.data_digest(_dataset(trainer, x=x)) != checks.data_digest(data)
    other = Dataset(data.arrays, data.train_idx[1:], np.sort([*data.eval_idx, data.train_idx[0]]))
    assert checks.data_digest(other) != checks.data_digest(data)


class _Store:
    directory = "ckpt"

    def __init__(self, fingerprint: dict[str, str]):
        self.meta = {"fingerprint": fingerprint}

    def read_meta(self, step: int | None = None) -> dict[str, Any]:
        return self.meta


def test_a_checkpoint_with_the_earlier_digest_is_compared_the_earlier_way(trainer: Any) -> None:
    now = trainer.fingerprint()
    assert now["data"].startswith("v2:") and now["data"] == checks.data_digest(trainer.data)
    # the earlier definition, written out: one hash over the whole arrays by name, then the split
    h = hashlib.sha256()
    for name in ("x", "y"):
        a = trainer.data.arrays[name]
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode() + a.tobytes())
    old = h.update(trainer.data.eval_idx.astype(np.int64).tobytes()) or h.hexdigest()[:16]
    assert checks.data_digest_v1(trainer.data) == old
    trainer.check_resume(_Store({**now, "data": old}))  # the same data, digested the earlier way
    with pytest.raises(TrainError, match="the data changed"):
        trainer.check_resume(_Store({**now, "data": "0123456789abcdef"}))
    with pytest.raises(TrainError, match="the data changed"):
        trainer.check_resume(_Store({**now, "data": "v2:0123456789abcdef"}))
    # without the earlier definition at hand, an earlier digest is not compared
    assert checks.compare_fingerprints({**now, "data": "0123456789abcdef"}, now) is None
