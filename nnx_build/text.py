"""Small text helpers every part of nnx-build writes its messages with (no heavy imports).

Example:
  >>> fmt_shape((2, "batch", 3))
  '(2, batch, 3)'
  >>> human_bytes(1536)
  '1.5 KB'
  >>> first_line(ValueError("bad value\\nmore detail"))
  'bad value'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["first_line", "fmt_shape", "human_bytes"]


def first_line(e: BaseException, *, with_type: bool = False) -> str:
    """The first non-blank line of ``str(e)`` (the exception's class name when it has none).

    ``with_type`` prefixes the class name: ``ValueError: bad value``.
    """
    lines = [line for line in str(e).strip().splitlines() if line.strip()]
    if not lines:
        return type(e).__name__
    return f"{type(e).__name__}: {lines[0]}" if with_type else lines[0]


def fmt_shape(shape: Iterable[Any] | None) -> str:
    """A shape as messages write it: ``(batch, 32, 32, 3)``; an unknown size (``None``) is ``*``."""
    if shape is None:
        return "(none)"
    return "(" + ", ".join("*" if d is None else str(d) for d in shape) + ")"


def human_bytes(n: int) -> str:
    """``n`` bytes for people: ``3.4 KB``, ``1.0 GB``."""
    if n >= 1024**5:  # also past what a float holds
        return f"{n // 1024**4:,} TB"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} TB"
