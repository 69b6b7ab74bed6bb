"""A plugin that registers a layer before anything looked one up keeps the built-in catalogue.

In a fresh process, ``nnx_build.register`` called first (as a plugin module does when
``--plugin`` imports it) must not leave the registry holding only the plugin's entry:
a spec mixing the plugin's op with built-in layers checks and builds.
"""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = r'''
from typing import Literal
import nnx_build
from nnx_build.schemas.common import Config

class Twice(Config):
    type: Literal["probe>Twice"] = "probe>Twice"

nnx_build.register("probe>Twice", Twice, lambda cfg, x: 2 * x, kind="op")
spec = (
    "format: 1\nname: m\ninputs: {x: [batch, 4]}\n"
    "layers:\n  - l: {type: Linear, in_features: 4, out_features: 3}\n  - {type: 'probe>Twice'}\n"
)
print(nnx_build.check(spec).total_params)
'''


def test_register_first_then_use_built_in_layers() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=180,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == str(4 * 3 + 3)
