"""Helpers shared by the benchmark scripts: JSON output, HLO normalisation.

Timing itself lives in :mod:`nnx_build.bench` (interleaved rounds, medians), the same
code ``nnx-build bench`` uses.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def write_result(name: str, data: dict[str, Any], out: Path | None = None) -> Path:
    """Writes ``data`` (with the machine it ran on) to ``benchmarks/results/NAME.json`` and prints it."""
    from nnx_build.bench import machine_info

    data = {"benchmark": name, **data, "machine": machine_info()}
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2)
    path.write_text(text + "\n")
    print(text)
    return path


_METADATA = re.compile(r",?\s*metadata=\{[^{}]*\}")
_FRONTEND = re.compile(r",?\s*frontend_attributes=\{[^{}]*\}")
_NAME = re.compile(r"%[A-Za-z_][\w.\-]*")
_HEADER = re.compile(r"^HloModule [^,\s]+")
_DEBUG_SECTION = re.compile(r"^(FileNames|FunctionNames|FileLocations|StackFrames)\s*$")
_DEBUG_ENTRY = re.compile(r"^\d+ ")
_PARAM = re.compile(r"([(,]\s*)[A-Za-z_][\w.\-]*:\s")
_ORIGIN = re.compile(r",?\s*origin=\{[^{}]*\}")


def run_measured(cmd: list[str], env: dict[str, str], cwd: Path) -> dict[str, float]:
    """Runs ``cmd`` (stdout discarded): wall seconds and the child's peak RSS (MB); a failure raises with its stderr."""
    import time

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {code}: {err.decode(errors='replace')[-2000:]}")
    return {"seconds": round(seconds, 3), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def compile_bytecode(package: Path) -> None:
    """Writes ``package``'s bytecode where it is stale or missing, as pip does for an installed
    package (an editable install has none, and with ``PYTHONDONTWRITEBYTECODE`` set every
    measured process would compile the sources again): both sides start the same way."""
    import compileall

    if not compileall.compile_dir(str(package), quiet=1):
        raise RuntimeError(f"cannot compile the bytecode of {package}")


def baseline_package(rev: str, where: Path, env: dict[str, str]) -> Path:
    """The package as it was at ``rev``, unpacked under ``where`` (run from there, it is the one imported)."""
    where.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "nnx_build"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    compile_bytecode(where / "nnx_build")
    probe = [sys.executable, "-c", "import nnx_build; print(nnx_build.__file__)"]
    found = subprocess.run(probe, capture_output=True, text=True, env=env, cwd=where, check=True).stdout.strip()
    if not Path(found).resolve().is_relative_to(where.resolve()):
        raise RuntimeError(f"the baseline would import {found}, not the copy in {where}")
    return where


def normalise_hlo(text: str) -> list[str]:
    """Optimised HLO text with metadata, module and value names removed.

    Names are renumbered in order of first appearance (``%v0, %v1, ...``), so two modules
    that compute the same thing in the same order give the same lines.
    """
    names: dict[str, str] = {}

    def rename(m: re.Match[str]) -> str:
        return names.setdefault(m.group(0), f"%v{len(names)}")

    lines = []
    for line in text.splitlines():
        if _DEBUG_SECTION.match(line) or _DEBUG_ENTRY.match(line):
            continue  # the source-location tables (file and function names of the Python code)
        line = _METADATA.sub("", line)
        line = _FRONTEND.sub("", line)
        line = _ORIGIN.sub("", line)
        line = _HEADER.sub("HloModule m", line)
        line = _NAME.sub(rename, line)
        if line.startswith(("ENTRY ", "%")) and line.rstrip().endswith("{"):
            line = _PARAM.sub(r"\1p: ", line)  # computation headers name their parameters
        if line.strip():
            lines.append(line.rstrip())
    return lines


def opcode_counts(lines: list[str]) -> dict[str, int]:
    """How many instructions of each opcode a normalised HLO module holds."""
    counts: dict[str, int] = {}
    for line in lines:
        m = re.match(r"\s*(?:ROOT\s+)?%v\d+\s*=\s*\S+(?:\s*\{[^}]*\})?\s+([\w\-]+)\(", line)
        if m is None:
            m = re.match(r"\s*(?:ROOT\s+)?%v\d+\s*=\s*\([^=]*\)\s+([\w\-]+)\(", line)
        if m:
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return dict(sorted(counts.items()))


def compare_hlo(a: str, b: str) -> dict[str, Any]:
    """Whether two optimised HLO modules are identical after normalisation; if not, how they differ."""
    import difflib

    la, lb = normalise_hlo(a), normalise_hlo(b)
    if la == lb:
        return {"identical": True, "instructions": len(la)}
    ca, cb = opcode_counts(la), opcode_counts(lb)
    anon = re.compile(r"%v\d+")
    same_multiset = sorted(anon.sub("%v", x) for x in la) == sorted(anon.sub("%v", x) for x in lb)
    diff = [
        line for line in difflib.unified_diff(la, lb, "built", "hand", n=0, lineterm="") if not line.startswith(("---", "+++", "@@"))
    ]
    return {
        "identical": False,
        "lines": [len(la), len(lb)],
        "opcode_counts_equal": ca == cb,
        # the same instructions (names aside) in another order: a scheduling difference only
        "same_instructions_in_another_order": same_multiset,
        "opcode_count_differences": {k: [ca.get(k, 0), cb.get(k, 0)] for k in sorted(set(ca) | set(cb)) if ca.get(k) != cb.get(k)},
        "differing_lines": len(diff),
        "diff_head": diff[:20],
    }
