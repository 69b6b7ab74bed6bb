"""``nnx-build weights``: a model's weights back out under its checkpoint's own names."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app
from .options import BuildArgs, SpecArg, build_options, console

__all__ = ["weights_cmd"]


@app.command("weights")
@build_options()
def weights_cmd(
    spec: SpecArg,
    weights: Annotated[
        Path,
        typer.Option(
            "--weights",
            help="The model's weights: a checkpoint in the spec's weights: mapping naming, or the model's own "
            "(an nnx-build train checkpoint, a save_weights file).",
            show_default=False,
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The file to write (.safetensors or .npz).", show_default=False)],
    like: Annotated[
        Path | None,
        typer.Option("--like", help="The checkpoint whose names, dtypes and buffers to write (default: --weights)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists.")] = False,
    *,
    build: BuildArgs,
) -> None:
    """Write the model's weights under a checkpoint's own names, through the inverse of the
    spec's weights: mapping (transposes, reshapes and splits undone, scanned layers unstacked).

    A model fine-tuned from a published checkpoint goes back to the ecosystem it came from;
    loading a checkpoint and writing it back gives the same tensors bit for bit.

    Examples:

      nnx-build weights specs/hf/all_minilm_l6_v2.yaml --weights model.safetensors --out again.safetensors

      nnx-build weights specs/hf/all_minilm_l6_v2.yaml --weights ckpt/tuned --like model.safetensors --out tuned.safetensors
    """
    from .. import pipeline
    from ..errors import NnxBuildError
    from ..weights import export_weights

    if out.exists() and not force:
        raise NnxBuildError(f"{out} exists; pass --force to replace it")
    options = build.options(weights=weights)
    built = pipeline.build(spec, options)
    path = export_weights(built.model, built.program, like or weights, out)
    console().print(f"wrote {path} ({path.stat().st_size:,} bytes) in the names of {like or weights}")
