"""Resource bounds: each limit has its own code, says how to raise it, and holds before allocation.

The terabyte specs run in a fresh process under ``RLIMIT_AS`` (3 GiB of address space,
JAX included): the abstract check must refuse them with a typed error, not by dying
of an allocation, and the process's peak RSS must stay small.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import nnx_build
from nnx_build import SpecErrors
from nnx_build.loader import Limits

HEAD = "format: 1\nname: m\ninputs:\n  x: [batch, 4]\n"
LINEAR = HEAD + "layers:\n  - l: {type: Linear, in_features: 4, out_features: 8}\n"


def _codes(fn, *args, **kwargs) -> SpecErrors:
    with pytest.raises(SpecErrors) as info:
        fn(*args, **kwargs)
    return info.value


def _repeat_spec(n: int, scan: bool = False) -> str:
    return (
        "format: 1\nname: m\ninputs: {x: [batch, 4]}\nblocks:\n  B:\n    layers:\n"
        "      - l: {type: Linear, in_features: 4, out_features: 4}\n"
        f"layers:\n  - b: {{type: B, repeat: {n}{', scan: true' if scan else ''}}}\n"
    )


# each limit: (code, spec text, Limits field or CLI flag, a value that lets it through)
DOC_LIMITS = [
    ("file-too-large", LINEAR + "doc: " + "a" * 5000 + "\n", "max_bytes", 10_000, Limits(max_bytes=1000)),
    ("too-many-nodes", HEAD + "args: {a: [" + ",".join(["1"] * 300) + "]}\nlayers: [relu]\n", "max_nodes", 1000, Limits(max_nodes=100)),
    ("too-deep", HEAD + "args: {a: " + "[" * 20 + "]" * 20 + "}\nlayers: [relu]\n", "max_depth", 64, Limits(max_depth=10)),
    ("too-long-string", LINEAR + "doc: " + "a" * 500 + "\n", "max_string", 1000, Limits(max_string=100)),
    ("too-many-modules", _repeat_spec(50), "max_modules", 200, Limits(max_modules=20)),
]


@pytest.mark.parametrize(("code", "text", "name", "enough", "limits"), DOC_LIMITS, ids=[c[0] for c in DOC_LIMITS])
def test_document_limits_have_a_code_and_say_how_to_raise_them(tmp_path: Path, code, text, name, enough, limits) -> None:
    errs = _codes(nnx_build.check, text, limits=limits)
    assert errs.codes == [code], errs
    e = errs.errors[0]
    assert f"--limit {name}=N" in e.message and f"Limits({name}=N)" in e.message, e.message
    assert e.loc.line >= 1
    # raising it on the command line lets the spec through
    spec = tmp_path / "spec.yaml"
    spec.write_text(text, encoding="utf-8")
    from nnx_build.cli import main

    low = {f: getattr(limits, f) for f in ("max_bytes", "max_nodes", "max_depth", "max_string", "max_modules")}
    args = [f"--limit={f}={v}" for f, v in low.items()]
    assert main(["check", str(spec), *args]) == 2
    args = [a for a in args if not a.startswith(f"--limit={name}=")] + [f"--limit={name}={enough}"]
    assert main(["check", str(spec), *args]) == 0


def test_parameter_and_byte_budgets(tmp_path: Path) -> None:
    big = HEAD + "layers:\n  - l: {type: Linear, in_features: 4, out_features: 1000}\n"  # 5,000 params, 20,000 bytes
    e = _codes(nnx_build.check, big, max_params=4999).errors[0]
    assert e.code == "too-many-params" and "--max-params" in e.message and "'max_params:'" in e.message
    e = _codes(nnx_build.check, big, max_bytes=19_999).errors[0]
    assert e.code == "too-many-bytes" and "--max-bytes" in e.message and "'max_bytes:'" in e.message
    assert "20,000 bytes of variables" in e.message
    assert nnx_build.check(big, max_params=5000, max_bytes=20_000 + 16).total_params == 5000  # + one example input
    # in the spec, located at the key
    text = big + "max_bytes: 100\n"
    e = _codes(nnx_build.check, text).errors[0]
    assert (e.code, e.loc.line) == ("too-many-bytes", text.count("\n", 0, text.index("max_bytes")) + 1)
    # and on the command line
    spec = tmp_path / "spec.yaml"
    spec.write_text(big, encoding="utf-8")
    from nnx_build.cli import main

    assert main(["check", str(spec), "--max-bytes", "1000"]) == 2
    assert main(["check", str(spec), "--max-bytes", "100000", "--max-params", "5000"]) == 0


def test_default_byte_budget_refuses_terabytes() -> None:
    # 4e11 float32 params: under the default parameter budget (1e12), but 1.6 TB is over the default 1 TiB
    text = HEAD + "layers:\n  - e: {type: Embed, num_embeddings: 400000, features: 1000000}\n"
    e = _codes(nnx_build.check, text.replace("[batch, 4]", "{shape: [batch, 4], dtype: int32}")).errors[0]
    assert e.code == "too-many-bytes", e


TERABYTE_SPECS = {
    "linear-1e12": HEAD + "layers:\n  - l: {type: Linear, in_features: 4, out_features: 1000000000000}\n",
    "embed-1e18": "format: 1\nname: m\ninputs: {x: {shape: [batch, 4], dtype: int32}}\nlayers:\n"
    "  - e: {type: Embed, num_embeddings: 1000000000000, features: 1000000}\n",
    "variable-1e18": HEAD + "variables:\n  w: {shape: [1000000, 1000000, 1000000]}\nlayers: [relu]\n",
    "scan-1e5-copies": (
        "format: 1\nname: m\ninputs: {x: [batch, 100000]}\nblocks:\n  B:\n    layers:\n"
        "      - l: {type: Linear, in_features: 100000, out_features: 100000}\n"
        "layers:\n  - b: {type: B, repeat: 100000, scan: true}\n"
    ),
    "expression-dims": "format: 1\nname: m\nargs: {d: 1000000}\ninputs: {x: [batch, 4]}\nlayers:\n"
    "  - l: {type: Linear, in_features: 4, out_features: '${d * d * d}'}\n",
    "input-at-dims": "format: 1\nname: m\ndims: {batch: 1000000000000}\ninputs: {x: [batch, 4096]}\nlayers: [relu]\n",
    "conv-kernel": "format: 1\nname: m\ninputs: {x: [batch, 8, 8, 3]}\nlayers:\n"
    "  - c: {type: Conv, in_features: 3, out_features: 100000, kernel_size: [100000, 100000]}\n",
    "nested-repeat": (
        "format: 1\nname: m\ninputs: {x: [batch, 4]}\nblocks:\n  A:\n    layers:\n"
        "      - l: {type: Linear, in_features: 4, out_features: 4, repeat: 1000}\n"
        "  B:\n    layers:\n      - a: {type: A, repeat: 1000}\nlayers:\n  - b: {type: B, repeat: 1000}\n"
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
        out[f"{path} {cmd}"] = [rc, err.getvalue()[-600:]]
from nnx_build.memory import peak_rss_mb
out["maxrss_mb"] = peak_rss_mb()
print(json.dumps(out))
"""


@pytest.mark.slow
def test_running_out_of_memory_within_budget_is_a_typed_error(tmp_path: Path) -> None:
    # 10 GB of weights is within the default budget; under a 3 GiB address space the build must
    # say so in one line (exit 2), not crash
    spec = tmp_path / "ten_gb.yaml"
    spec.write_text(
        "format: 1\nname: m\ninputs: {x: [batch, 50000]}\nlayers:\n  - l: {type: Linear, in_features: 50000, out_features: 50000}\n",
        encoding="utf-8",
    )
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER.replace('("check", "build")', '("build",)'), str(spec)],
        capture_output=True, text=True, timeout=600, env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rc, err = json.loads(proc.stdout.strip().splitlines()[-1])[f"{spec} build"]
    assert rc == 2, err
    assert "out of memory allocating the weights of 'm'" in err and "--max-bytes" in err, err
