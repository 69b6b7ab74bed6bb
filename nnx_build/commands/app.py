"""The ``nnx-build`` typer app every sub-command registers on (``cli.py`` runs it)."""

from __future__ import annotations

import typer

__all__ = ["HELP", "app"]

HELP = """Build, check and export Flax NNX models from YAML / JSON specs.

Examples:

  nnx-build specs/seed/model.yaml          # build, print a summary, run on zeros

  nnx-build check specs/zoo/gpt2_xl.yaml   # abstract check: no weight allocated

  nnx-build check spec.yaml --json         # machine-readable totals (last line)

  nnx-build export specs/cnn.yaml --to stablehlo,savedmodel,onnx --out build/cnn

  nnx-build train specs/digits_cnn.yaml --data digits.npz --out ckpt/digits

  nnx-build test specs/                    # the specs' own tests: sections

  nnx-build bench specs/seed/model.yaml    # fast path vs nnx.jit vs each artifact

  nnx-build graph specs/zoo/gpt2.yaml --out gpt2.svg   # a picture of the steps

  nnx-build show specs/zoo/gpt2.yaml --out gpt2.html   # model page: graph, summary, variables, spec

  nnx-build view build/cnn                 # the exported ONNX model in Netron (Ctrl-C stops)

  nnx-build check specs/hf/all_minilm_l6_v2.yaml --weights model.safetensors   # mapping checked, no tensor read

  nnx-build weights specs/hf/all_minilm_l6_v2.yaml --weights ckpt/tuned --like model.safetensors --out tuned.safetensors

  nnx-build check specs/zoo/llama_7b.yaml --mesh fsdp=8 --optimizer adamw   # bytes per device, planned

  nnx-build launch -n 2 --devices-per-process 4 -- train spec.yaml --data d.npz --mesh data=2,model=4

  nnx-build schema --out schema/nnx-spec.schema.json

Every command that builds a spec takes --limit, --max-params, --max-bytes, --plugin,
--plugins-from-entry-points and --mesh.

Compiled programs are kept in JAX's persistent compilation cache, so the next command
that compiles the same program reads it instead, and so are the weights a build's
initialisers computed (up to 512 MiB a model), for the next build with the same seed: in
$XDG_CACHE_HOME/nnx-build (~/.cache without it), or in NNX_BUILD_COMPILE_CACHE=PATH;
NNX_BUILD_COMPILE_CACHE=0 or --no-compile-cache (before the command) turns it off.
"""

app = typer.Typer(
    name="nnx-build",
    help=HELP,
    no_args_is_help=False,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)


@app.callback(invoke_without_command=False)
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors (before the sub-command)."),
    no_compile_cache: bool = typer.Option(
        False,
        "--no-compile-cache",
        help="Do not read or write JAX's persistent compilation cache and the initial weights kept beside it "
        "(before the sub-command; or set NNX_BUILD_COMPILE_CACHE=0).",
    ),
) -> None:
    """Options before the sub-command; ``cli.main`` reads ``--debug`` and ``--no-compile-cache`` itself."""
