"""The builder's imports go one way: builder -> registry / layers -> schemas / loader -> errors.

Walks the imports (module-level and inside functions) with ``ast``: no cycle among
the language's modules and no ``from x import _private`` into or out of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "nnx_build"
#: the language: spec -> program -> module, and the catalogue
AREA = ("builder", "registry", "layer_table", "layers", "validation", "schemas", "loader", "spec_io", "expr", "errors")


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


def _in_area(name: str) -> bool:
    return name.split(".")[1] in AREA if name.count(".") >= 1 else False


def _imports(mods: dict[str, Path]) -> tuple[dict[str, set[str]], list[str]]:
    edges: dict[str, set[str]] = {m: set() for m in mods}
    private: list[str] = []
    for m, path in mods.items():
        package = m if path.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if not target.startswith("nnx_build"):
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}"
                edges[m].add(full if full in mods else target)
                if alias.name.startswith("_") and (_in_area(m) or _in_area(target)):
                    private.append(f"{m}: from {target} import {alias.name}")
    return edges, private


def _cycle(edges: dict[str, set[str]], nodes: set[str]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(v: str, path: list[str]) -> list[str] | None:
        state[v] = 1
        for w in sorted(edges.get(v, ())):
            if w not in nodes:
                continue
            if state.get(w) == 1:
                return [*path[path.index(w):], w] if w in path else [v, w]
            if w not in state:
                found = visit(w, [*path, w])
                if found:
                    return found
        state[v] = 2
        return None

    for v in sorted(nodes):
        if v not in state:
            found = visit(v, [v])
            if found:
                return found
    return None


def test_no_import_cycle_in_the_language() -> None:
    mods = _modules()
    edges, _ = _imports(mods)
    area = {m for m in mods if _in_area(m)}
    assert area >= {"nnx_build.builder.program", "nnx_build.validation", "nnx_build.registry", "nnx_build.layers.linear"}
    cycle = _cycle(edges, area)
    assert cycle is None, " -> ".join(cycle or [])


def test_no_private_names_imported_across_modules() -> None:
    _, private = _imports(_modules())
    assert not private, private
