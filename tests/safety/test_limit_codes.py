"""Each over-budget spec is refused with the ONE code its size calls for, before allocation.

The expected code of each spec follows from its arithmetic and the order of the checks
(module count while compiling, then parameters, then bytes of variables plus example
inputs), with the default limits: 10,000 module instances, 10**12 parameters, 1 TiB:

* parameters over 10**12 -> ``too-many-params`` (whatever the bytes);
* no parameters but a 1.6e16-byte example input -> ``too-many-bytes``;
* 10**9 unscanned module instances (2 * 10**10 parameters, under budget) -> ``too-many-modules``.

``check`` and ``build`` run in a fresh process under ``RLIMIT_AS`` (3 GiB), so a refusal
that came from running out of memory would show as a crash, not as the code.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAD = "format: 1\nname: m\ninputs:\n  x: [batch, 4]\n"
PARAMS, BYTES, MODULES = "too-many-params", "too-many-bytes", "too-many-modules"
CODES = (PARAMS, BYTES, MODULES)

# name: (spec, expected code, why)
SPECS = {
    "linear-1e12": (
        HEAD + "layers:\n  - l: {type: Linear, in_features: 4, out_features: 1000000000000}\n",
        PARAMS, "4e12 + 1e12 parameters",
    ),
    "embed-1e18": (
        "format: 1\nname: m\ninputs: {x: {shape: [batch, 4], dtype: int32}}\n"
        "layers:\n  - e: {type: Embed, num_embeddings: 1000000000000, features: 1000000}\n",
        PARAMS, "1e18 parameters",
    ),
    "variable-1e18": (
        HEAD + "variables:\n  w: {shape: [1000000, 1000000, 1000000]}\nlayers: [relu]\n",
        PARAMS, "a 1e18-element variable",
    ),
    "scan-1e5-copies": (
        "format: 1\nname: m\ninputs: {x: [batch, 100000]}\nblocks:\n  B:\n    layers:\n"
        "      - l: {type: Linear, in_features: 100000, out_features: 100000}\n"
        "layers:\n  - b: {type: B, repeat: 100000, scan: true}\n",
        PARAMS, "1e5 scanned copies of 1e10 parameters; scanned, so 2 module instances",
    ),
    "expression-dims": (
        "format: 1\nname: m\nargs: {d: 1000000}\ninputs: {x: [batch, 4]}\n"
        "layers:\n  - l: {type: Linear, in_features: 4, out_features: '${d * d * d}'}\n",
        PARAMS, "5e18 parameters",
    ),
    "input-at-dims": (
        "format: 1\nname: m\ndims: {batch: 1000000000000}\ninputs: {x: [batch, 4096]}\nlayers: [relu]\n",
        BYTES, "no parameters; the example input is 1e12 * 4096 * 4 bytes",
    ),
    "conv-kernel": (
        "format: 1\nname: m\ninputs: {x: [batch, 8, 8, 3]}\n"
        "layers:\n  - c: {type: Conv, in_features: 3, out_features: 100000, kernel_size: [100000, 100000]}\n",
        PARAMS, "3e15 parameters",
    ),
    "nested-repeat": (
        "format: 1\nname: m\ninputs: {x: [batch, 4]}\nblocks:\n  A:\n    layers:\n"
        "      - l: {type: Linear, in_features: 4, out_features: 4, repeat: 1000}\n"
        "  B:\n    layers:\n      - a: {type: A, repeat: 1000}\nlayers:\n  - b: {type: B, repeat: 1000}\n",
        MODULES, "about 1e9 unscanned module instances, only 2e10 parameters",
    ),
}

RUNNER = r"""
import json, resource, sys, io
from contextlib import redirect_stderr, redirect_stdout
limit = 3 * 2**30
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from nnx_build.cli import main
out = {}
for path in sys.argv[1:]:
    for cmd in ("check", "build"):
        err = io.StringIO()
        with redirect_stdout(io.StringIO()), redirect_stderr(err):
            rc = main([cmd, path])
        out[f"{path} {cmd}"] = [rc, err.getvalue()]
from nnx_build.memory import peak_rss_mb
out["maxrss_mb"] = peak_rss_mb()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, tuple[int, str]]]:
    root = tmp_path_factory.mktemp("limits")
    paths = {}
    for name, (text, _, _) in SPECS.items():
        p = root / f"{name}.yaml"
        p.write_text(text, encoding="utf-8")
        paths[name] = str(p)
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, *paths.values()], capture_output=True, text=True, timeout=600,
        env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        **{name: {cmd: tuple(out[f"{p} {cmd}"]) for cmd in ("check", "build")} for name, p in paths.items()},
        "maxrss_mb": out["maxrss_mb"],
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("cmd", ["check", "build"])
def test_each_spec_has_its_one_code(refused, name: str, cmd: str) -> None:
    _, code, why = SPECS[name]
    rc, err = refused[name][cmd]
    assert rc == 2, (name, cmd, err)
    assert f"error[{code}]" in err, f"{name} ({why}): expected {code}, got: {err[-600:]}"
    others = [c for c in CODES if c != code and f"error[{c}]" in err]
    assert not others, f"{name}: also reports {others}"
    assert "Traceback" not in err and "MemoryError" not in err


@pytest.mark.slow
def test_refusing_them_all_stays_small(refused) -> None:
    assert refused["maxrss_mb"] < 1500, refused["maxrss_mb"]
