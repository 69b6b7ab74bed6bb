#!/usr/bin/env python3
"""Writes scikit-learn's bundled digits (1,797 8x8 grey images, no download) as an .npz.

The arrays are named after the inputs and targets of specs/digits_cnn.yaml:

  x  float32 (1797, 8, 8, 1)  pixel intensities scaled from 0..16 to 0..1
  y  int32   (1797,)          the digit, 0..9

Usage:
  python scripts/make_digits.py digits.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def make_digits(out: Path) -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[..., None]
    y = digits.target.astype(np.int32)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, x=x, y=y)
    tmp.replace(out)  # never a half-written file under the final name
    return {"x": x, "y": y}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the .npz to write")
    args = parser.parse_args(argv)
    arrays = make_digits(args.out)
    print(f"wrote {args.out}: x {arrays['x'].shape} {arrays['x'].dtype}, y {arrays['y'].shape} {arrays['y'].dtype}, "
          f"{len(np.unique(arrays['y']))} classes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
