"""The linter and the type checker pass: ``ruff check`` over the code and the tests, and
``mypy --strict`` over the public API (configuration in pyproject.toml).

Both come with the ``dev`` extra (``pip install -e ".[dev]"``, part of ``all``).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: what ruff checks
LINTED = ("nnx_build", "tests", "benchmarks")
#: the public API mypy checks (the modules they import are read, not reported)
TYPED = (
    "nnx_build/__init__.py",
    "nnx_build/pipeline.py",
    "nnx_build/builder/__init__.py",
    "nnx_build/weights/__init__.py",
    "nnx_build/exporters/__init__.py",
)


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec(tool) is None:
        pytest.skip(f"{tool} is not installed (pip install -e '.[dev]')")
    return subprocess.run([sys.executable, "-m", tool, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_check_passes() -> None:
    result = _run("ruff", "check", *LINTED)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow  # about 20 s without mypy's cache
def test_mypy_passes_on_the_public_api() -> None:
    result = _run("mypy", *TYPED)
    assert result.returncode == 0, result.stdout + result.stderr
