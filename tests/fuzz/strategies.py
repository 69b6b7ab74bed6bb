"""Hypothesis strategies: hostile values, mutations of example specs, generated specs."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
SPEC_FILES = sorted(p for p in (ROOT / "specs").rglob("*.yaml"))
#: specs whose abstract check takes well under a second (the rest only load and compile)
SMALL = [p for p in SPEC_FILES if p.stat().st_size < 6000 and "zoo" not in p.parts or p.name == "lstm_classifier.yaml"]
DOCS: dict[Path, Any] = {p: yaml.safe_load(p.read_text(encoding="utf-8")) for p in SPEC_FILES}

NAMES = ["x", "h", "linear", "Linear", "Lienar", "relu", "out", "batch", "Param", "Frozen", "MLP", "wte", "attend"]
PAYLOAD_NAMES = [
    "os.system", "builtins>eval", "builtins.eval", "__import__", "subprocess.Popen", "os", "posix.system",
    "__builtins__", "eval", "exec", "importlib.import_module", "nnx_build.cli.main", "jax.numpy.save",
    "__class__", "l.__class__.__init__", "numpy.load",
]
SIZES = [0, -1, -7, 1, 3, 2**31, 2**62, 2**63, 10**12, 10**30, 10**200]

hostile_scalar = st.one_of(
    st.sampled_from([None, True, False, "", 0.5, float("inf"), float("nan"), -0.0]),
    st.sampled_from(SIZES),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(NAMES + PAYLOAD_NAMES),
    st.sampled_from(["${1/0}", "${10**100}", "${d * 10**9}", "${__import__('os').system('true')}", "${x",
                     "${(lambda: 1)()}", "${[1]*10**9}", "${'a'*10**9}", "${9**9**9}", "${max(1)}", "${-1}"]),
    st.text(max_size=12),
    st.sampled_from(["@@long@@70000", "@@long@@3000000"]),  # expanded by to_text
)
hostile_value = st.one_of(
    hostile_scalar,
    st.lists(hostile_scalar, max_size=4),
    st.dictionaries(st.sampled_from(["type", "module", "method", "in", "shape", "init", "kind", "repeat"]), hostile_scalar, max_size=3),
    st.sampled_from([
        {"type": "os.system"}, {"module": "os"}, {"type": "call", "module": "os", "method": "system"},
        {"type": "builtins>eval"}, {"init": {"type": "os.system"}}, [[[[[[]]]]]], {"a": {"b": {"c": {}}}},
    ]),
)


def paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += paths(v, (*prefix, i))
    return out


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        data = data[p]
    return data


def _names(data: Any) -> list[str]:
    return [v for p in paths(data) if isinstance(v := _get(data, p), str) and v.isidentifier()]


@st.composite
def mutation(draw: Any, data: Any) -> Any:
    """One mutation of a spec's data: delete, replace, retype, rescale, rewire or nest."""
    data = copy.deepcopy(data)
    targets = paths(data)[1:]
    path = draw(st.sampled_from(targets))
    parent, key = _get(data, path[:-1]), path[-1]
    value = parent[key]
    op = draw(st.sampled_from(["delete", "replace", "replace", "rescale", "rewire", "add-key", "nest", "self-ref"]))
    if op == "delete":
        del parent[key]
    elif op == "replace":
        parent[key] = draw(hostile_value)
    elif op == "rescale":
        if isinstance(value, int) and not isinstance(value, bool):
            parent[key] = draw(st.sampled_from([0, -value, -1, value * 10**6, 10**12, 2**63, value * 1000, value + 1]))
        else:
            parent[key] = draw(st.sampled_from(SIZES))
    elif op == "rewire":  # a name from elsewhere in the spec: dangling, duplicate or cyclic references
        names = _names(data) or ["x"]
        parent[key] = draw(st.sampled_from(names))
    elif op == "add-key" and isinstance(parent, dict):
        k = draw(st.sampled_from(["in", "as", "repeat", "scan", "kinds", "module", "type", "init", "shape", "max_params",
                                  "max_bytes", "seed", "dims", "foo", "name", "sharding"]))
        parent[k] = draw(hostile_value)
    elif op == "nest":  # expanded in the text by to_text: deep values are not drawn as data
        parent[key] = f"{NEST}{draw(st.sampled_from([10, 70, 500, 5000]))}"
    else:  # self-ref: a step reads its own output, a block uses itself
        if isinstance(parent, dict) and isinstance(key, str):
            parent["in"] = key
        elif isinstance(value, dict) and value:
            name = next(iter(value))
            if isinstance(value[name], dict):
                value[name]["in"] = name
                value[name].setdefault("type", name)
    return data


NEST = "@@nest@@"
_NEST_RE = re.compile(r"""["']?@@nest@@(\d+)["']?""")
_LONG_RE = re.compile(r"@@long@@(\d+)")


def to_text(data: Any, fmt: str) -> str | None:
    """YAML or JSON text of ``data``, with each nesting marker expanded to [[[...]]]."""
    try:
        text = json.dumps(data) if fmt == "json" else yaml.safe_dump(data, sort_keys=False, width=200)
    except (ValueError, TypeError, RecursionError, yaml.YAMLError):
        return None
    text = _NEST_RE.sub(lambda m: "[" * int(m.group(1)) + "1" + "]" * int(m.group(1)), text)
    return _LONG_RE.sub(lambda m: "a" * int(m.group(1)), text)
