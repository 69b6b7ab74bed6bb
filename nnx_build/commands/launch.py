"""``nnx-build launch``: run a command as several local processes of one JAX job."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import app

__all__ = ["launch_cmd"]


@app.command(
    "launch",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def launch_cmd(
    ctx: typer.Context,
    n: Annotated[int, typer.Option("-n", "--num-processes", min=1, help="How many processes to start.")] = 2,
    devices: Annotated[
        int | None,
        typer.Option("--devices-per-process", min=1, help="Simulated CPU devices per process (sets XLA_FLAGS)."),
    ] = None,
    grace: Annotated[
        float, typer.Option("--grace", min=0, help="Seconds the others get to stop after one process fails.")
    ] = 30.0,
) -> None:
    """Run `nnx-build COMMAND ...` as N local processes of one job, to try multi-process runs on one machine.

    Each process gets JAX_COORDINATOR_ADDRESS (127.0.0.1 and a free port),
    JAX_NUM_PROCESSES and JAX_PROCESS_ID, as a cluster launcher would set them; the
    command joins the job (CPU collectives through gloo) and its --mesh spans the devices
    of all processes. Only process 0's output is shown. If one process fails the others
    are stopped after --grace seconds.

    Examples:

      nnx-build launch -n 2 --devices-per-process 4 -- train spec.yaml --data d.npz --mesh data=2,model=4
    """
    from ..distributed import launch
    from ..errors import NnxBuildError

    argv = list(ctx.args)
    if not argv:
        raise NnxBuildError("launch needs a command to run: nnx-build launch -n 2 -- train spec.yaml --data d.npz")
    code = launch(argv, n, devices_per_process=devices, grace=grace)
    if code:
        raise typer.Exit(code)
