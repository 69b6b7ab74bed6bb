"""Shared fixtures: compiled models are built once per session.

The suite keeps JAX's persistent compilation cache in ``.pytest_cache`` (one folder per
pair of jax/jaxlib versions), set here before JAX is imported: this process and every
process a test starts (the CLI, export verification) read the programs the others
compiled instead of compiling them again. ``NNX_BUILD_COMPILE_CACHE`` set outside the
suite wins (``0`` runs it without a cache).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nnx_build.compile_cache import ENV, jax_settings, resolve, versioned_name

os.environ.setdefault("JAX_PLATFORMS", "cpu")

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"

os.environ.setdefault(ENV, str(ROOT / ".pytest_cache" / "jax-compile-cache" / versioned_name()))
os.environ.update(jax_settings(resolve()))


def pytest_configure(config: pytest.Config) -> None:
    # an unreadable cache entry is compiled again with jax's warning: not a test failure
    config.addinivalue_line("filterwarnings", "default:Error (reading|writing) persistent compilation cache:UserWarning")


@pytest.fixture(scope="session")
def specs_dir() -> Path:
    return SPECS
