"""The model page (``nnx-build show``): one HTML file that works offline.

It holds the graph (each step links to its line of the spec), the summary table, the
module's variable tree rendered by treescope (the renderer ``flax.nnx`` integrates; the
tree is the abstract module the check builds, so it shows every variable's shape and
dtype and allocates nothing), and the spec's source with numbered lines. Everything is
inline: no file or address outside the page is read.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .render import render, svg_body

if TYPE_CHECKING:
    from ..builder.program import Program
    from ..pipeline import Options

__all__ = ["model_page", "write_page"]

STYLE = """
body{margin:0;font-family:Helvetica,Arial,sans-serif;color:#222}
header{padding:.6em 1em;background:#f3f5f8;border-bottom:1px solid #ccd}
header h1{margin:0;font-size:1.3em}
main{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,2fr);gap:1em;padding:1em}
section{min-width:0}
h2{font-size:1.05em;margin:.2em 0 .5em}
#graph svg{max-width:100%;height:auto}
#source pre{margin:0;font:12px/1.45 Menlo,Consolas,monospace;background:#fafafa;border:1px solid #ddd;
 overflow:auto;max-height:90vh}
#source .line{display:block;padding-right:1em}
#source .line:target{background:#fff3b8}
#source .no{display:inline-block;width:3.5em;color:#999;text-align:right;margin-right:1em;user-select:none}
table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.wide{grid-column:1 / -1}
"""


def _line_of(program: Program, locate: Any) -> dict[str, int]:
    """Step label -> its line in the spec, for the model's own steps and its methods'."""
    root = program.root
    nodes = [*(root.check_graph or root.main).nodes, *(n for _, g in root.methods for n in g.nodes)]
    out: dict[str, int] = {}
    for node in nodes:
        try:
            out.setdefault(node.label, locate(node.path).line)
        except Exception:  # a path the document does not have
            continue
    return out


def model_page(program: Program, source: str, *, options: Options | None = None, expand: bool = False,
               engine: str = "auto", title: str | None = None) -> str:
    """The page's HTML for ``program``, whose spec text is ``source``."""
    import treescope

    from ..builder.abstract import abstract_check
    from ..spec_io import spec_locator
    from .dot import to_dot

    locate = spec_locator(program.spec)
    report, abstract = abstract_check(
        program, locate,
        max_params=options.max_params if options else None,
        max_bytes=options.max_bytes if options else None,
    )
    dot = to_dot(program, expand=expand, report=report, abstract=abstract, links=True)
    svg = svg_body(render(dot, "svg", engine).decode())
    lines = _line_of(program, locate)
    name = program.spec.name
    title = title or f"{name}: model"
    e = html.escape

    rows = []
    for r in report.rows:
        line = lines.get(r.name)
        cell = f'<a href="#L{line}">{e(r.name)}</a>' if line else e(r.name)
        params = ", ".join(f"{k} {v:,}" for k, v in r.params.items() if v)
        rows.append(f"<tr><td>{cell}</td><td>{e(r.type)}</td><td>{e(r.shape)}</td><td>{e(params)}</td>"
                    f'<td class="num">{r.bytes:,}</td></tr>')
    kinds = ", ".join(f"{k} {v:,}" for k, v in report.params.items())
    table = (
        "<table><thead><tr><th>step</th><th>type</th><th>output shape</th><th>parameters</th><th>bytes</th></tr>"
        "</thead><tbody>" + "".join(rows) + "</tbody></table>"
        f"<p>{report.total_params:,} parameters ({e(kinds) or 'none'}), {report.total_bytes:,} bytes of variables.</p>"
    )
    src = "".join(
        f'<span class="line" id="L{i}"><span class="no">{i}</span>{e(text)}</span>'
        for i, text in enumerate(source.splitlines(), start=1)
    )
    tree = treescope.render_to_html(abstract, roundtrip_mode=False, compressed=True)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{e(title)}</title>\n<style>{STYLE}</style>\n</head>\n'
        f"<body>\n<header><h1>{e(name)}</h1>{report.total_params:,} parameters</header>\n<main>\n"
        f'<section id="graph"><h2>Graph</h2>{svg}</section>\n'
        f'<section id="source"><h2>Spec</h2><pre>{src}</pre></section>\n'
        f'<section id="summary" class="wide"><h2>Summary</h2>{table}</section>\n'
        f'<section id="variables" class="wide"><h2>Variables</h2>{tree}</section>\n'
        "</main>\n</body>\n</html>\n"
    )


def write_page(program: Program, spec_path: str | os.PathLike[str], out: str | os.PathLike[str], *,
               options: Options | None = None, expand: bool = False, engine: str = "auto") -> Path:
    """Writes :func:`model_page` of ``program`` (read from ``spec_path``) to ``out``."""
    source = Path(spec_path).read_text(encoding="utf-8")
    page = model_page(program, source, options=options, expand=expand, engine=engine)
    out = Path(out)
    if out.parent != Path():
        out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
