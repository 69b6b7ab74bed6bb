"""`nnx-build graph`: every spec renders; the SVG holds every step and every edge the spec names.

The expected steps and edges are read from the spec's YAML here, by the rules the spec
reference states (a step without ``in:`` reads the previous step's output, an unnamed
step's output is ``_{type}_{index}``), not from the compiled program the picture is
drawn from.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from nnx_build import pipeline
from nnx_build.errors import NnxBuildError
from nnx_build.graph import find_engine, render, to_dot

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted(p for p in (ROOT / "specs").rglob("*.yaml") if "goldens" not in p.parts)
SVG = "{http://www.w3.org/2000/svg}"

pytestmark = pytest.mark.skipif(find_engine() is None, reason="no Graphviz layout engine (pip install graphviz-pure)")

_CACHE: dict[tuple[Path, bool], bytes] = {}


def svg_of(path: Path, expand: bool) -> bytes:
    key = (path, expand)
    if key not in _CACHE:
        _CACHE[key] = render(to_dot(pipeline.compile(path), expand=expand), "svg")
    return _CACHE[key]


def parse(svg: bytes) -> tuple[set[str], list[tuple[str, str]], ET.Element]:
    """Node titles and (source, target) edges of a Graphviz SVG."""
    root = ET.fromstring(svg)
    nodes, edges = set(), []
    for g in root.iter(f"{SVG}g"):
        title = g.find(f"{SVG}title")
        if g.get("class") == "node":
            nodes.add(title.text)
        elif g.get("class") == "edge":
            src, _, dst = title.text.partition("->")
            edges.append((src, dst))
    return nodes, edges, root


# ---- the spec's own steps and references, from its YAML ----------------------------------


def _steps(layers: list[Any]) -> list[tuple[str | None, str, dict[str, Any]]]:
    """(name, type, fields) of each step in a ``layers:`` list, in every shorthand."""
    out = []
    for item in layers:
        if isinstance(item, str):
            out.append((None, item, {}))
        elif "type" in item:
            out.append((None, item["type"], item))
        else:
            ((name, body),) = item.items()
            body = {"type": body} if isinstance(body, str) else (body or {"type": name})
            out.append((name, body.get("type", name), body))
    return out


def _refs(value: Any) -> list[tuple[str | None, str]]:
    if isinstance(value, str):
        return [(None, value)]
    if isinstance(value, list):
        return [(str(i), v) for i, v in enumerate(value)]
    return [(k, v) for k, v in value.items()]


def spec_edges(layers: list[Any], inputs: list[str], start: int = 0) -> tuple[list[str], list[tuple[str, str, str | None]]]:
    """The step labels of ``layers`` and their (value, step label, input key) references."""
    labels, edges = [], []
    previous = inputs[0] if len(inputs) == 1 else None
    for i, (name, type_name, body) in enumerate(_steps(layers)):
        label = name or f"_{type_name}_{start + i}"
        refs = _refs(body["in"]) if "in" in body else [(None, previous)]
        edges += [(ref, label, key) for key, ref in refs]
        labels.append(label)
        outs = body.get("as", label)
        previous = outs if isinstance(outs, str) else outs[0]
    return labels, edges


def producers(spec: dict[str, Any]) -> dict[str, str]:
    """Value name -> node title, for the model level (blocks collapsed)."""
    out = {n: f"input:{n}" for n in _input_names(spec)}
    out.update({n: f"variable:{n}" for n in spec.get("variables", {})})
    for i, (name, type_name, body) in enumerate(_steps(spec["layers"])):
        label = name or f"_{type_name}_{i}"
        outs = body.get("as", label)
        for o in [outs] if isinstance(outs, str) else outs:
            out[o] = f"step:{label}"
    return out


def _input_names(spec: dict[str, Any]) -> list[str]:
    return list(spec.get("inputs", {}))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: str(p.relative_to(ROOT / "specs")))
def test_every_spec_renders_with_every_step_and_edge(path: Path) -> None:
    spec = yaml.safe_load(path.read_text())
    nodes, edges, _ = parse(svg_of(path, expand=False))
    labels, refs = spec_edges(spec["layers"], _input_names(spec))
    assert {f"step:{label}" for label in labels} <= nodes
    where = producers(spec)
    for ref, label, _ in refs:
        assert (where[ref], f"step:{label}") in edges, f"{ref} -> {label}"
    for name in spec.get("outputs", []):
        assert f"output:{name}" in nodes and (where[name], f"output:{name}") in edges
    for name in _input_names(spec):
        assert f"input:{name}" in nodes


@pytest.mark.parametrize("path", SPECS, ids=lambda p: str(p.relative_to(ROOT / "specs")))
def test_expanded_blocks_show_their_steps_and_edges(path: Path) -> None:
    spec = yaml.safe_load(path.read_text())
    nodes, edges, _ = parse(svg_of(path, expand=True))
    # every model-level block step, expanded: its inner steps under "step:BLOCK/..."
    for name, type_name, _ in _steps(spec["layers"]):
        if type_name not in spec.get("blocks", {}):
            continue
        block = spec["blocks"][type_name]
        inner_inputs = list(block.get("inputs", ["x"]))
        labels, refs = spec_edges(block["layers"], inner_inputs)
        assert {f"step:{name}/{label}" for label in labels} <= nodes, name
        inner = {n: f"block-input:{name}/{n}" for n in inner_inputs}
        nested = set()
        for i, (lname, ltype, body) in enumerate(_steps(block["layers"])):
            label = lname or f"_{ltype}_{i}"
            outs = body.get("as", label)
            for o in [outs] if isinstance(outs, str) else outs:
                inner.setdefault(o, f"step:{name}/{label}")
                if ltype in spec.get("blocks", {}):
                    nested.add(o)  # a nested block's outputs come from a step inside it
        for ref, label, _ in refs:
            if ref not in nested:
                assert (inner[ref], f"step:{name}/{label}") in edges, f"{ref} -> {name}/{label}"


def test_collapsed_has_fewer_nodes_than_expanded() -> None:
    path = ROOT / "specs/zoo/resnet50.yaml"
    collapsed, _, _ = parse(svg_of(path, expand=False))
    expanded, _, _ = parse(svg_of(path, expand=True))
    assert len(collapsed) < len(expanded)
    assert "step:h" not in parse(svg_of(ROOT / "specs/zoo/gpt2.yaml", expand=True))[0]
    assert "step:h" in parse(svg_of(ROOT / "specs/zoo/gpt2.yaml", expand=False))[0]


def _text(root: ET.Element) -> str:
    return " ".join(t for t in root.itertext())


def test_repeat_scan_methods_and_tied_modules_are_drawn() -> None:
    residual = svg_of(ROOT / "specs/residual.yaml", expand=False)
    nodes, edges, root = parse(residual)
    text = _text(root)
    assert "Residual \N{MULTIPLICATION SIGN}3" in text and "Gated \N{MULTIPLICATION SIGN}4 scan" in text
    # the method is its own box with its own output, fed by the step it returns
    assert root.find(f".//{SVG}g[@id='method:features']") is not None
    assert ("step:gated", "output:features.gated") in edges
    # the frozen gain is a variable of its kind, read by 'scaled'
    assert ("variable:gain", "step:scaled") in edges and "Frozen" in text
    # per-kind counts (residual.yaml's own test: Param 1242, Frozen 8)
    assert "Param 1,242" in text and "Frozen 8" in text

    gpt2 = svg_of(ROOT / "specs/zoo/gpt2.yaml", expand=True)
    _, edges, root = parse(gpt2)
    # the output projection is tied to the token embedding
    assert root.find(f".//{SVG}g[@id='shares:step:wte->step:logits']") is not None
    # several inputs: each edge says which one it feeds
    labels = {g.get("id") for g in root.iter(f"{SVG}g") if g.get("class") == "edge"}
    assert "edge:step:h/ln_1->step:h/attn:inputs_q" in labels
    assert "edge:step:h/mask->step:h/attn:mask" in labels
    # symbolic dims as the spec writes them
    assert "(batch, seq, 768)" in _text(root)
    # shapes inside the (scanned) block: fc widens d_model=768 to 4 * d_model, the mask is (batch, 1, seq, seq)
    assert "(batch, seq, 3072)" in _node_text(root, "step:h/fc")
    assert "(batch, 1, seq, seq)" in _node_text(root, "step:h/mask")
    # and inside a block repeated without scan: Residual's 'up' is Linear(d=8 -> hidden=16)
    _, _, res = parse(svg_of(ROOT / "specs/residual.yaml", expand=True))
    assert "(batch, 16)" in _node_text(res, "step:res/up")
    assert "(batch, 8)" in _node_text(res, "step:gated/out")


def _node_text(root: ET.Element, title: str) -> str:
    g = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "node" and g.find(f"{SVG}title").text == title)
    return " ".join(g.itertext())


def test_same_spec_same_bytes(tmp_path: Path) -> None:
    spec = ROOT / "specs/zoo/gpt2.yaml"
    copy = tmp_path / "elsewhere" / "gpt2.yaml"
    copy.parent.mkdir()
    shutil.copy(spec, copy)
    a = render(to_dot(pipeline.compile(spec), expand=True), "svg")
    b = render(to_dot(pipeline.compile(copy), expand=True), "svg")
    assert a == b
    assert str(ROOT).encode() not in a and str(tmp_path).encode() not in b


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nnx_build.cli", *args], capture_output=True, text=True, check=False)


def test_cli_writes_each_format(tmp_path: Path) -> None:
    spec = str(ROOT / "specs/residual.yaml")
    from nnx_build.cli import main

    for suffix in ("svg", "dot", "html", "png"):
        out = tmp_path / f"model.{suffix}"
        assert main(["graph", spec, "--out", str(out)]) in (0, None)
        data = out.read_bytes()
        if suffix == "png":
            assert data.startswith(b"\x89PNG\r\n\x1a\n")
        elif suffix == "dot":
            assert data.startswith(b'digraph "residual" {')
        elif suffix == "html":
            assert b"<!DOCTYPE html>" in data and b"<svg" in data and b"<script" not in data
        else:
            ET.fromstring(data)


def test_cli_refuses_unknown_suffix(tmp_path: Path) -> None:
    proc = _cli("graph", str(ROOT / "specs/residual.yaml"), "--out", str(tmp_path / "model.pdf"))
    assert proc.returncode == 2
    assert "--out must end in .svg, .png, .dot, .html" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_engine_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    r = importlib.import_module("nnx_build.graph.render")  # the module, not the function of that name
    monkeypatch.setattr(r, "find_engine", lambda engine="auto": None)
    with pytest.raises(NnxBuildError, match="pip install graphviz-pure"):
        render("digraph {a}", "svg")
    assert render("digraph {a}", "dot") == b"digraph {a}"


def test_graph_module_imports_no_jax() -> None:
    code = "import nnx_build.graph, nnx_build.commands.graph, sys; print('jax' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


@pytest.mark.parametrize(("name", "args"), [("gpt2.svg", []), ("gpt2-expanded.svg", ["--expand"])])
def test_readme_pictures_are_what_the_command_makes(tmp_path: Path, name: str, args: list[str]) -> None:
    from nnx_build.cli import main

    out = tmp_path / name
    assert main(["graph", str(ROOT / "specs/zoo/gpt2.yaml"), *args, "--out", str(out)]) in (0, None)
    assert out.read_bytes() == (ROOT / "docs/pictures" / name).read_bytes(), (
        f"docs/pictures/{name} is out of date: nnx-build graph specs/zoo/gpt2.yaml {' '.join(args)} --out docs/pictures/{name}"
    )
    assert f"nnx-build graph specs/zoo/gpt2.yaml {' '.join([*args, ''])}--out docs/pictures/{name}" in (ROOT / "README.md").read_text()


METHOD_SPEC = """
format: 1
name: twoway
inputs: {x: [batch, 4]}
layers:
  - enc: {type: Linear, in_features: 4, out_features: 2}
  - deep: {type: Linear, in_features: 2, out_features: 2, repeat: 3}
  - dec: {type: Linear, in_features: 2, out_features: 4}
methods:
  decode:
    inputs: {z: [batch, 2]}
    layers:
      - back: {type: call, module: dec, in: z}
      - act: {type: tanh}
    outputs: [act]
"""


def test_method_with_its_own_inputs_and_steps(tmp_path: Path) -> None:
    spec = tmp_path / "twoway.yaml"
    spec.write_text(METHOD_SPEC)
    nodes, edges, root = parse(render(to_dot(pipeline.compile(spec)), "svg"))
    # the method is an entry point of its own: its input, its steps, its output, in its box
    box = root.find(f".//{SVG}g[@id='method:decode']")
    assert box is not None
    assert {"input:decode.z", "step:back", "step:act", "output:decode.act"} <= nodes
    assert ("input:decode.z", "step:back") in edges and ("step:back", "step:act") in edges
    assert ("step:act", "output:decode.act") in edges
    # 'back' calls the module 'dec' creates: drawn as shared
    assert ("step:dec", "step:back") in edges
    # a repeated layer: xN, with the parameters of all its copies (3 x (2*2 + 2))
    text = _text(root)
    assert "Linear \N{MULTIPLICATION SIGN}3" in text and "Param 18" in text


@pytest.mark.skipif(shutil.which("dot") is None, reason="no system Graphviz (apt-get install graphviz)")
def test_system_graphviz_draws_the_same_graph() -> None:
    dot = to_dot(pipeline.compile(ROOT / "specs/zoo/gpt2.yaml"), expand=True)
    ours = parse(render(dot, "svg", "graphviz-pure"))
    theirs = parse(render(dot, "svg", "dot"))
    assert ours[0] == theirs[0] and sorted(ours[1]) == sorted(theirs[1])


def test_unknown_engine_is_refused_first(tmp_path: Path) -> None:
    proc = _cli("graph", str(ROOT / "specs/residual.yaml"), "--out", str(tmp_path / "m.svg"), "--engine", "neato")
    assert proc.returncode == 2 and "--engine must be auto or one of graphviz-pure, dot" in proc.stderr
    assert not (tmp_path / "m.svg").exists()
