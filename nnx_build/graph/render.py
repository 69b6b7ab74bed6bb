"""Lays DOT text out with a Graphviz engine and writes ``.svg``, ``.png``, ``.dot`` or ``.html``.

The engines, in the order ``auto`` tries them:

- ``graphviz-pure``: the program the ``graphviz-pure`` package installs (a port of
  Graphviz 16.1 in one static binary, installed with nnx-build). It writes the same
  bytes on every platform, so the same spec gives the same picture everywhere.
- ``dot``: Graphviz's own, where the system has it (``apt-get install graphviz``); its
  output differs a little between Graphviz versions.
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import NnxBuildError

if TYPE_CHECKING:
    from ..builder.program import Program
    from ..pipeline import Options

__all__ = ["ENGINES", "FORMATS", "find_engine", "html_page", "render", "write"]

ENGINES = ("graphviz-pure", "dot")
FORMATS = ("svg", "png", "dot", "html")
TIMEOUT = 600


def find_engine(engine: str = "auto") -> str | None:
    """The path of the layout program ``engine`` names (``auto``: the first of :data:`ENGINES` found)."""
    if engine != "auto" and engine not in ENGINES:
        raise NnxBuildError(f"--engine must be auto or one of {', '.join(ENGINES)}, received {engine!r}")
    names = ENGINES if engine == "auto" else (engine,)
    dirs = [Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))]
    for name in names:
        for d in dirs:  # the environment's own scripts, also when it is not activated
            path = d / name
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
        if found := shutil.which(name):
            return found
    return None


def render(dot: str, fmt: str, engine: str = "auto", *, title: str = "") -> bytes:
    """``dot`` laid out as ``fmt`` (``svg``, ``png``, ``html``; ``dot`` returns the text itself)."""
    if fmt not in FORMATS:
        raise NnxBuildError(f"cannot write .{fmt}; the graph is written as {', '.join('.' + f for f in FORMATS)}")
    if fmt == "dot":
        return dot.encode()
    if fmt == "html":
        return html_page(render(dot, "svg", engine).decode(), title).encode()
    exe = find_engine(engine)
    if exe is None:
        wanted = "graphviz-pure or Graphviz's dot" if engine == "auto" else engine
        raise NnxBuildError(
            f"no layout engine found ({wanted}): install one with 'pip install graphviz-pure' "
            "(or 'apt-get install graphviz'), or write the graph as .dot"
        )
    try:
        proc = subprocess.run([exe, f"-T{fmt}"], input=dot.encode(), capture_output=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired as e:
        raise NnxBuildError(f"{Path(exe).name} took more than {TIMEOUT} s to lay the graph out") from e
    if proc.returncode != 0 or not proc.stdout:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise NnxBuildError(f"{Path(exe).name} -T{fmt} failed: {err[-1] if err else f'exit {proc.returncode}'}")
    return proc.stdout


def svg_body(svg: str) -> str:
    """The ``<svg>`` element of an SVG document (without its XML prolog), for inlining in HTML."""
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def html_page(svg: str, title: str) -> str:
    """A self-contained page showing ``svg``: no script, no network."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n"
        "<style>body{margin:1em;font-family:Helvetica,Arial,sans-serif}"
        "svg{max-width:100%;height:auto}</style>\n"
        f"</head>\n<body>\n<h1>{html.escape(title)}</h1>\n{svg_body(svg)}</body>\n</html>\n"
    )


def write(
    program: Program,
    out: str | os.PathLike[str],
    *,
    expand: bool = False,
    engine: str = "auto",
    options: Options | None = None,
) -> Path:
    """Writes the graph of ``program`` to ``out``; its suffix picks the format."""
    from .dot import to_dot

    out = Path(out)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise NnxBuildError(f"--out must end in {', '.join('.' + f for f in FORMATS)}, received {str(out)!r}")
    dot = to_dot(program, expand=expand, options=options)
    data = render(dot, fmt, engine, title=f"{program.spec.name}: graph")
    if out.parent != Path():
        out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out
