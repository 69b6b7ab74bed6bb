"""Byte-level damage to every example spec file: the loader answers with located errors.

Cases insert bytes (non-UTF-8, NUL, control characters, BOMs), cut the file, duplicate
or drop lines, splice in YAML tags (``!!python/object/apply:os.system``), anchors and
alias bombs, merge keys, deep brackets and multi-megabyte strings, then load the file
from disk (``.yaml`` or ``.json``) and compile it. A ``touch`` payload must never run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from nnx_build.builder.compiler import compile_spec
from nnx_build.loader import Limits
from nnx_build.spec_io import load_spec, spec_locator

from .conftest import fuzz, run_case
from .strategies import SPEC_FILES

LIMITS = Limits(max_modules=400)
WORK = Path(tempfile.mkdtemp(prefix="nnx-fuzz-text-"))
SENTINEL = WORK / "pwned"

SNIPPETS = [
    f'!!python/object/apply:os.system ["touch {SENTINEL}"]',
    f'!!python/object/new:subprocess.Popen [["touch", "{SENTINEL}"]]',
    "!!python/name:os.system", "!!python/module:os", "!!binary aGVsbG8=", "!!set {a, b}", "!!omap [a: 1]",
    "&a [1, 2]", "*a", "*undefined", "<<: *a", "? [complex, key]\n: 1", "!custom 3", "%YAML 1.1\n---",
    "---\n", "...\n", "{", "}", "[", "]", ": ", "- ", "\t", "'", '"', "#", "|\n  ", ">-\n  ", "&b {x: *b}",
    "x: &x [*x]", "\ufeff", "\u202e", "\x00", "\x1b[31m", "1e999999", "0x" + "f" * 100, "9" * 5000, ".inf", ".nan",
    "[" * 2000 + "]" * 2000, "{a: " * 300 + "1" + "}" * 300, "a" * 100_000,
]
BOMB = "\n".join(
    ['b0: &b0 ["x","x","x","x","x","x","x","x","x","x"]']
    + [f"b{i}: &b{i} [" + ",".join([f"*b{i - 1}"] * 10) + "]" for i in range(1, 9)]
) + "\n"


@st.composite
def damaged(draw) -> tuple[str, bytes]:
    path = draw(st.sampled_from(SPEC_FILES))
    raw = path.read_bytes()
    ops = draw(st.lists(st.sampled_from(["insert-bytes", "snippet", "snippet", "cut", "drop-line", "dup-line",
                                         "bomb", "indent", "replace-byte"]), min_size=1, max_size=3))
    for op in ops:
        at = draw(st.integers(0, len(raw)))
        if op == "insert-bytes":
            raw = raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:]
        elif op == "snippet":
            raw = raw[:at] + draw(st.sampled_from(SNIPPETS)).encode("utf-8") + raw[at:]
        elif op == "cut":
            raw = raw[:at]
        elif op in ("drop-line", "dup-line", "indent"):
            lines = raw.split(b"\n")
            i = draw(st.integers(0, max(0, len(lines) - 1)))
            if op == "drop-line":
                del lines[i]
            elif op == "dup-line":
                lines.insert(i, lines[i])
            else:
                lines[i] = b" " * draw(st.sampled_from([1, 3, 40])) + lines[i]
            raw = b"\n".join(lines)
        elif op == "bomb":
            raw = BOMB.encode() + raw
        else:
            if raw:
                i = min(at, len(raw) - 1)
                raw = raw[:i] + bytes([draw(st.integers(0, 255))]) + raw[i + 1:]
    suffix = draw(st.sampled_from([".yaml", ".yaml", ".json"]))
    return path.name + suffix, raw


@fuzz(600)
@given(damaged())
def test_damaged_spec_files(case) -> None:
    name, raw = case
    path = WORK / ("spec" + Path(name).suffix)
    path.write_bytes(raw)
    run_case(
        "text damage",
        name,
        [
            ("load", lambda _: load_spec(path, limits=LIMITS)),
            ("compile", lambda spec: compile_spec(spec, spec_locator(spec), LIMITS)),
        ],
    )
    assert not SENTINEL.exists(), "a YAML payload ran"
