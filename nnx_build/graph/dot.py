"""A compiled program as Graphviz DOT text: one node per step, clusters for blocks.

Node names (the ``<title>`` of each node in the SVG Graphviz writes, and its ``id``):

- ``input:NAME`` a model input, ``input:METHOD.NAME`` an input only a method takes;
- ``variable:NAME`` a variable of the model (``variable:BLOCK/NAME`` inside a block);
- ``step:LABEL`` a step (its name, or its output name when it has none); inside an
  expanded block ``step:BLOCK/LABEL``, and the block's inputs ``block-input:BLOCK/NAME``;
- ``output:NAME`` a model output, ``output:METHOD.NAME`` a method's output.

Every edge is a value flowing from its producer to a step that reads it; where a step
reads several values, each edge is labelled with the input it feeds (``inputs_q``,
``mask``; ``0``, ``1`` for a list). A ``call`` step is joined to the module it calls by
a dashed "shares" edge. The text depends on the spec only: the same spec gives the
same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..builder.abstract import Report
    from ..builder.program import Graph, Node, Program, Scope
    from ..pipeline import Options

__all__ = ["COLORS", "to_dot"]

#: header colours by what a node is
COLORS = {
    "layer": "#d6e6f8",
    "op": "#eeeeee",
    "block": "#fbe3c2",
    "call": "#d4efd0",
    "input": "#c6ead0",
    "output": "#f5cdc8",
    "variable": "#e7dcf3",
    "method": "#fff3b8",
}
FONT = "Helvetica"
TIMES = "\N{MULTIPLICATION SIGN}"


def to_dot(
    program: Program,
    *,
    expand: bool = False,
    options: Options | None = None,
    report: Report | None = None,
    abstract: Any = None,
    links: bool = False,
) -> str:
    """DOT text for ``program``.

    Args:
      expand: draw each block as a cluster of its steps (default: one node per block).
      options: the budgets for the abstract check (``max_params``, ``max_bytes``).
      report, abstract: the abstract check's results, if already computed; by default
        :func:`nnx_build.builder.abstract.abstract_check` runs (no weight is allocated).
      links: give each step an ``href`` to ``#L<line>`` of the spec (the model page).
    """
    if report is None or abstract is None:
        from ..builder.abstract import abstract_check
        from ..spec_io import spec_locator

        report, abstract = abstract_check(
            program,
            spec_locator(program.spec),
            max_params=options.max_params if options else None,
            max_bytes=options.max_bytes if options else None,
        )
    from ..spec_io import spec_locator

    locate = spec_locator(program.spec)
    writer = _Writer(program, report, abstract, expand, locate, links)
    if expand:
        from .shapes import block_step_shapes

        writer.inner_shapes = block_step_shapes(program, abstract, locate)
    return writer.write()


# ---- text helpers -----------------------------------------------------------------


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _h(text: str) -> str:
    """Escapes text for an HTML-like label (non-ASCII as character references)."""
    out = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    return "".join(c if ord(c) < 128 else f"&#{ord(c)};" for c in out)


def _shape(shape: Any) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _counts(params: dict[str, int]) -> str:
    return "  ".join(f"{k} {v:,}" for k, v in params.items() if v)


def _table(color: str, title: str, type_name: str, lines: list[str], border: int = 1) -> str:
    head = f"<b>{_h(title)}</b>" + (f" : {_h(type_name)}" if type_name else "")
    rows = [f'<tr><td bgcolor="{color}">{head}</td></tr>']
    rows += [f'<tr><td><font point-size="10">{_h(line)}</font></td></tr>' for line in lines if line]
    return (
        f'<<table border="{border}" cellborder="1" cellspacing="0" cellpadding="4">' + "".join(rows) + "</table>>"
    )


def _attrs(**attrs: Any) -> str:
    parts = []
    for k, v in attrs.items():
        if v is None:
            continue
        # plain strings stay ASCII (the layout engine measures only ASCII text)
        value = v if isinstance(v, str) and v.startswith("<<") else _q(str(v).replace(TIMES, "x"))
        parts.append(f"{k}={value}")
    return "[" + ", ".join(parts) + "]"


# ---- the walk ---------------------------------------------------------------------


@dataclass
class _Source:
    """Where a value comes from: a node, and the output's name if the node has several."""

    node: str
    out: str | None = None


@dataclass
class _Writer:
    program: Program
    report: Report
    abstract: Any
    expand: bool
    locate: Callable[[tuple[Any, ...]], Any]
    links: bool
    lines: list[str] = field(default_factory=list)
    edges: list[str] = field(default_factory=list)
    ties: list[tuple[str, str, str]] = field(default_factory=list)
    #: output shapes of steps inside blocks, "BLOCK/STEP" -> text
    inner_shapes: dict[str, str] = field(default_factory=dict)

    def write(self) -> str:
        root = self.program.root
        report = self.report
        rows = {r.name: r for r in report.rows}
        total = f"{report.total_params:,} parameters"
        if len(report.params) > 1:
            total += " (" + ", ".join(f"{k} {v:,}" for k, v in report.params.items()) + ")"
        self.lines += [
            f"digraph {_q(self.program.spec.name)} {{",
            "  graph "
            + _attrs(
                label=f"{self.program.spec.name}: {total}", labelloc="t", fontname=FONT, fontsize=16,
                rankdir="TB", nodesep=0.3, ranksep=0.4, tooltip=self.program.spec.name,
            )
            + ";",
            f"  node [shape=plain, fontname={_q(FONT)}, fontsize=12];",
            f"  edge [fontname={_q(FONT)}, fontsize=10, color=\"#555555\"];",
        ]
        env: dict[str, _Source] = {}
        specs = dict(root.main.input_specs)
        for name in root.main.inputs:
            self._input(f"input:{name}", name, specs.get(name), "  ")
            env[name] = _Source(f"input:{name}")
        self._variables(root, "", env, "  ")
        graph = root.check_graph or root.main
        attr_ids: dict[str, str] = {}
        self._steps(graph.nodes, "", env, self.abstract, 1, "  ", rows, attr_ids)
        for name in root.main.outputs:
            self._output(f"output:{name}", name, self._out_shape(name), env, "  ", COLORS["output"], "output")
        main_ids = {n.index for n in graph.nodes}
        for mname, mgraph in root.methods:
            self._method(mname, mgraph, main_ids, env, rows, attr_ids)
        for target, call_id, label in self.ties:
            if target in attr_ids:
                self.edges.append(
                    f"  {_q(attr_ids[target])} -> {_q(call_id)} "
                    + _attrs(id=f"shares:{attr_ids[target]}->{call_id}", label=label, style="dashed",
                             color="#2e8b57", fontcolor="#2e8b57", arrowhead="odot", constraint="false")
                    + ";"
                )
        return "\n".join([*self.lines, *self.edges, "}"]) + "\n"

    # ---- nodes ----
    def _line(self, path: tuple[Any, ...]) -> int | None:
        try:
            return self.locate(path).line
        except Exception:  # a path the document does not have
            return None

    def _node(self, node_id: str, label: str, indent: str, tooltip: str, path: tuple[Any, ...] | None = None) -> None:
        line = self._line(path) if path is not None else None
        if line is not None:
            tooltip += f" (line {line})"
        href = f"#L{line}" if self.links and line is not None else None
        self.lines.append(f"{indent}{_q(node_id)} {_attrs(id=node_id, label=label, tooltip=tooltip, href=href)};")

    def _input(self, node_id: str, name: str, spec: Any, indent: str, note: str = "input") -> None:
        lines = [f"{_shape(spec.shape)} {spec.dtype}"] if spec is not None else []
        self._node(node_id, _table(COLORS["input"], name, note, lines), indent, f"{note} {name}")

    def _output(self, node_id: str, name: str, shape: str, env: dict[str, _Source], indent: str,
                color: str, note: str) -> None:
        self._node(node_id, _table(color, name, note, [shape]), indent, f"{note} {name}")
        if name in env:
            self._edge(env[name], node_id, None)

    def _out_shape(self, name: str) -> str:
        shapes = [f"{_shape(v['shape'])} {v['dtype']}" for k, v in self.report.outputs.items()
                  if k == name or k.startswith(name + "[")]
        return ", ".join(shapes)

    def _variables(self, scope: Scope, prefix: str, env: dict[str, _Source], indent: str) -> None:
        for vname, var, vpath in scope.variables:
            node_id = f"variable:{prefix}{vname}"
            self._node(node_id, _table(COLORS["variable"], vname, var.kind, [_shape(var.shape)]), indent,
                       f"variable {vname}", vpath)
            env[vname] = _Source(node_id)

    def _edge(self, src: _Source, dst: str, label: str | None, **extra: Any) -> None:
        text = " -> ".join(p for p in (src.out, label) if p)
        eid = f"edge:{src.node}->{dst}" + (f":{label}" if label else "")
        self.edges.append(f"  {_q(src.node)} -> {_q(dst)} {_attrs(id=eid, label=text or None, **extra)};")

    def _inputs_of(self, node: Node, env: dict[str, _Source], dst: str) -> None:
        refs = [(str(i), a) for i, a in enumerate(node.args)] + list(node.kwargs)
        several = len(refs) > 1
        for i, (key, ref) in enumerate(refs):
            label = key if several or i >= len(node.args) else None
            if ref in env:
                self._edge(env[ref], dst, label)

    def _steps(self, nodes: tuple[Node, ...], prefix: str, env: dict[str, _Source], module: Any, per: int,
               indent: str, rows: dict[str, Any], attr_ids: dict[str, str]) -> None:
        for node in nodes:
            node_id = f"step:{prefix}{node.label}"
            row = rows.get(node.label) if not prefix else None
            sub = getattr(module, node.attr, None) if module is not None and node.attr else None
            shape = row.shape if row is not None else self.inner_shapes.get(prefix + node.label, "-")
            if node.kind == "block" and self.expand and node.block is not None:
                self._block(node, node_id, prefix, env, sub, per, indent, row, shape)
            else:
                self._step(node, node_id, env, sub, per, indent, row, shape)
                for out in node.outs:
                    env[out] = _Source(node_id, out if len(node.outs) > 1 else None)
            if node.attr:
                attr_ids[node.attr] = node_id

    def _params(self, node: Node, sub: Any, per: int, row: Any) -> dict[str, int]:
        if row is not None:
            return dict(row.params)
        if sub is None:
            return {}
        from ..builder.abstract import count_variables

        counts, _ = count_variables(sub)
        return {k: v // per for k, v in counts.items()}

    def _type(self, node: Node) -> str:
        text = node.type
        if node.kind == "call" and node.config is not None:
            text = f"call {node.config.module}" + (f".{node.config.method}" if node.config.method else "")
        if node.repeat is not None:
            text += f" {TIMES}{node.repeat}" + (" scan" if node.scan else "")
        return text

    def _step(self, node: Node, node_id: str, env: dict[str, _Source], sub: Any, per: int, indent: str,
              row: Any, shape: str) -> None:
        kind = node.kind
        lines = []
        if shape != "-":
            lines.append(shape)
        lines.append(_counts(self._params(node, sub, per, row)))
        if kind == "block" and node.block is not None:
            graph = node.block.check_graph or node.block.main
            lines.append(f"block of {len(graph.nodes)} steps")
        border = 2 if kind == "block" else 1
        label = _table(COLORS.get(kind, COLORS["op"]), node.label, self._type(node), lines, border)
        self._node(node_id, label, indent, f"{node.label}: {self._type(node)}", node.path)
        self._inputs_of(node, env, node_id)
        if kind == "call" and node.config is not None:
            target = node.config.module.split(".")[0]
            self.ties.append((target, node_id, "shares " + target))

    def _block(self, node: Node, node_id: str, prefix: str, env: dict[str, _Source], sub: Any, per: int,
               indent: str, row: Any, shape: str) -> None:
        block = node.block
        assert block is not None
        inner_prefix = f"{prefix}{node.label}/"
        copy = sub
        inner_per = per
        if node.repeat is not None and sub is not None:
            if not node.scan or node.repeat == 0:
                copy = sub[0] if len(sub) else None
            else:
                inner_per = per * node.repeat
        title = f"{node.label} : {self._type(node)}"
        params = _counts(self._params(node, sub, per, row))
        shape = "" if shape == "-" else shape
        texts = [f"<b>{_h(title)}</b>", *(f'<font point-size="10">{_h(t)}</font>' for t in (shape, params) if t)]
        label = "<" + "".join(t + '<br align="left"/>' for t in texts) + ">"
        self.lines.append(f"{indent}subgraph {_q('cluster_' + node_id)} {{")
        inner = indent + "  "
        self.lines.append(
            f"{inner}graph {_attrs(id=node_id, label=label, labeljust='l', style='rounded,filled', fillcolor='#fdf4e7', color='#d08a2a', tooltip=title)};"
        )
        inner_env: dict[str, _Source] = {}
        refs = [(str(i), a) for i, a in enumerate(node.args)] + list(node.kwargs)
        given = dict(zip(block.main.inputs, (r for _, r in refs[: len(node.args)]), strict=False))
        given.update(dict(node.kwargs))
        for name in block.main.inputs:
            in_id = f"block-input:{inner_prefix}{name}"
            self.lines.append(
                f"{inner}{_q(in_id)} "
                + _attrs(
                    id=in_id, shape="ellipse", style="filled", fillcolor=COLORS["input"], label=name, fontsize=10,
                    margin="0.05,0.02", height=0.3, tooltip=f"input {name} of {node.label}",
                )
                + ";"
            )
            inner_env[name] = _Source(in_id)
            if name in given and given[name] in env:
                several = len(refs) > 1
                self._edge(env[given[name]], in_id, name if several else None)
        self._variables(block, inner_prefix, inner_env, inner)
        graph = block.check_graph or block.main
        self._steps(graph.nodes, inner_prefix, inner_env, copy, inner_per, inner, {}, {})
        self.lines.append(f"{indent}}}")
        # copy i's outputs are copy i+1's first inputs
        if node.repeat:
            carried = node.carried if node.carried is not None else len(block.main.outputs)
            for out, name in list(zip(block.main.outputs, block.main.inputs, strict=False))[:carried]:
                if out in inner_env:
                    self._edge(inner_env[out], f"block-input:{inner_prefix}{name}", f"{TIMES}{node.repeat}",
                               style="dashed", constraint="false", color="#d08a2a", fontcolor="#d08a2a")
        for i, out in enumerate(node.outs):
            if i < len(block.main.outputs) and block.main.outputs[i] in inner_env:
                env[out] = inner_env[block.main.outputs[i]]

    def _method(self, mname: str, mgraph: Graph, main_ids: set[int], env: dict[str, _Source],
                rows: dict[str, Any], attr_ids: dict[str, str]) -> None:
        menv = dict(env)
        specs = dict(mgraph.input_specs)
        cid = f"method:{mname}"
        self.lines.append(f"  subgraph {_q('cluster_' + cid)} {{")
        self.lines.append(
            "    graph "
            + _attrs(
                id=cid, label=f"method {mname}()", labeljust="l", style="dashed,rounded,filled",
                fillcolor="#fffbe6", color="#b59a00", tooltip=f"method {mname}",
            )
            + ";"
        )
        for name in mgraph.inputs:
            if name not in env or not env[name].node.startswith("input:"):
                node_id = f"input:{mname}.{name}"
                self._input(node_id, name, specs.get(name), "    ", f"input of {mname}()")
                menv[name] = _Source(node_id)
        own = tuple(n for n in mgraph.nodes if n.index not in main_ids)
        self._steps(own, "", menv, self.abstract, 1, "    ", rows, attr_ids)
        for name in mgraph.outputs:
            row = rows.get(name)
            shape = row.shape if row is not None and row.shape != "-" else ""
            self._output(f"output:{mname}.{name}", name, shape, menv, "    ", COLORS["method"], f"{mname}() output")
        self.lines.append("  }")
