"""``nnx-build graph``: a picture of a spec's steps, laid out by Graphviz."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app
from .options import BuildArgs, SpecArg, build_options, console

__all__ = ["graph_cmd"]


@app.command("graph")
@build_options()
def graph_cmd(
    spec: SpecArg,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Picture to write: .svg, .png, .html or .dot (the suffix picks).")
    ],
    expand: Annotated[bool, typer.Option("--expand", help="Draw the steps inside each block (default: one node per block).")] = False,
    engine: Annotated[
        str, typer.Option("--engine", help="Layout program: auto (graphviz-pure, else Graphviz's dot), graphviz-pure or dot.")
    ] = "auto",
    *,
    build: BuildArgs,
) -> None:
    """Draw SPEC as a graph: one node per step with its type, output shape and parameters by kind.

    Model inputs and outputs are marked; blocks are single nodes (clusters of their steps with
    --expand), repeat: N shows as xN, scan is marked, each method is its own dashed box, and a
    'call' step is joined to the module it shares by a dashed edge. No weight is allocated.
    The same spec gives the same bytes.

    Examples:

      nnx-build graph specs/zoo/gpt2.yaml --out gpt2.svg

      nnx-build graph specs/zoo/gpt2.yaml --out gpt2.png --expand

      nnx-build graph specs/residual.yaml --out residual.dot
    """
    from .. import pipeline
    from ..graph import find_engine, write

    find_engine(engine)  # an unknown --engine is refused before the spec is built
    options = build.options()
    program = pipeline.compile(spec, options)
    path = write(program, out, expand=expand, engine=engine, options=options)
    console().print(f"wrote {path}")


@app.command("show")
@build_options()
def show_cmd(
    spec: SpecArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="The page to write (.html).")],
    expand: Annotated[bool, typer.Option("--expand", help="Draw the steps inside each block.")] = False,
    engine: Annotated[
        str, typer.Option("--engine", help="Layout program: auto (graphviz-pure, else Graphviz's dot), graphviz-pure or dot.")
    ] = "auto",
    *,
    build: BuildArgs,
) -> None:
    """Write a model page for SPEC: one HTML file that works offline.

    The page holds the graph (click a step to see its line of the spec), the summary
    table, the variable tree (treescope, as flax.nnx displays modules; shapes and dtypes,
    nothing allocated) and the spec's source with numbered lines.

    Examples:

      nnx-build show specs/zoo/gpt2.yaml --out gpt2.html

      nnx-build show specs/residual.yaml --out residual.html --expand
    """
    from .. import pipeline
    from ..errors import NnxBuildError
    from ..graph import find_engine
    from ..graph.page import write_page

    if out.suffix.lower() != ".html":
        raise NnxBuildError(f"--out must end in .html, received {str(out)!r}")
    find_engine(engine)
    options = build.options()
    program = pipeline.compile(spec, options)
    path = write_page(program, spec, out, options=options, expand=expand, engine=engine)
    console().print(f"wrote {path}")


@app.command("view")
def view_cmd(
    path: Annotated[
        Path, typer.Argument(help="An export folder (nnx-build export --out DIR) or an .onnx file.", show_default=False)
    ],
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to serve on (0: any free port).")] = 8080,
    host: Annotated[str, typer.Option("--host", help="Address to serve on.")] = "localhost",
    browse: Annotated[bool, typer.Option("--browse/--no-browse", help="Open the page in a web browser.")] = True,
) -> None:
    """Open an export's ONNX model in Netron, served on localhost until Ctrl-C.

    Examples:

      nnx-build view build/cnn

      nnx-build view build/cnn --port 8081 --no-browse

      nnx-build view model.onnx
    """
    from ..errors import NnxBuildError

    if path.is_dir():
        model = path / "onnx" / "main.onnx"
        if not model.is_file():
            raise NnxBuildError(f"{path} has no onnx/main.onnx: export it with --to onnx (nnx-build export SPEC --to onnx --out {path})")
    elif path.suffix.lower() == ".onnx" and path.is_file():
        model = path
    else:
        raise NnxBuildError(f"{path} is neither an export folder nor an .onnx file")
    try:
        import netron
    except ImportError as e:
        raise NnxBuildError("nnx-build view needs Netron: pip install netron") from e
    try:
        address = netron.serve(str(model), address=(host, port), browse=browse)
    except OSError as e:
        raise NnxBuildError(f"cannot serve on {host}:{port}: {e.strerror or e}; choose another --port") from e
    print(f"Netron shows {model} at http://{address[0]}:{address[1]}/ (Ctrl-C stops it)", flush=True)
    netron.wait()
