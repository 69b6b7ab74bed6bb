"""Pictures of a spec: its compiled program as a Graphviz graph (DOT, SVG, PNG, HTML).

::

    from nnx_build import pipeline
    from nnx_build.graph import to_dot, render

    program = pipeline.compile("specs/zoo/gpt2.yaml")
    dot = to_dot(program, expand=False)      # DOT text, same spec -> same bytes
    svg = render(dot, "svg")                 # laid out by the Graphviz engine

:func:`to_dot` runs the abstract check (no weight is allocated) for every step's output
shape and parameter counts; :func:`render` runs a Graphviz layout engine: the
``graphviz-pure`` program that the package of that name installs, or Graphviz's own
``dot``. Nothing heavy is imported until a function runs.
"""

from __future__ import annotations

from .dot import to_dot
from .render import ENGINES, FORMATS, find_engine, render, write

__all__ = ["ENGINES", "FORMATS", "find_engine", "render", "to_dot", "write"]
