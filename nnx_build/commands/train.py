"""``nnx-build train``: train a spec on an .npz, with orbax checkpoints and exact resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer

from .app import app
from .options import BuildArgs, JsonFlag, SpecArg, build_options, console

__all__ = ["train_cmd"]

DataOpt = Annotated[
    Path, typer.Option("--data", "-d", help="An .npz with one array per spec input and per train target (examples first).")
]
EpochsOpt = Annotated[
    int | None,
    typer.Option(
        "--epochs",
        "-e",
        min=0,
        help="Stop after N epochs in total, resumed ones included (0: set up and check the data only) "
        "[default: train.epochs].",
    ),
]
CkptOpt = Annotated[
    Path | None, typer.Option("--out", "-o", help="Checkpoint directory (orbax): model state, optimizer state, step; one per epoch.")
]
ResumeOpt = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Continue from the latest checkpoint in --out, exactly where it stopped; refused when the spec's model, "
        "the optimizer, the schedule, the training setup or the data changed since.",
    ),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Delete existing checkpoints in --out and start over.")]
INIT_WEIGHTS_HELP = (
    "Start from these weights (fine-tuning): a pretrained checkpoint through the spec's weights: mapping, "
    "or an nnx-build checkpoint."
)
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar (on stderr).")]
LogdirOpt = Annotated[
    Path | None,
    typer.Option(
        "--logdir",
        help="Write TensorBoard event files here: train loss and metrics, learning rate, gradient norm and step time "
        "per step, train and eval metrics per epoch (view with: tensorboard --logdir DIR).",
    ),
]
#: the per-step and per-epoch metrics, one JSON object a line, beside the checkpoints
METRICS_FILE = "metrics.jsonl"


def _fmt(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())


@app.command("train")
@build_options(weights=INIT_WEIGHTS_HELP)
def train_cmd(
    spec: SpecArg,
    data: DataOpt,
    epochs: EpochsOpt = None,
    out: CkptOpt = None,
    resume: ResumeOpt = False,
    force: ForceOpt = False,
    progress: ProgressOpt = True,
    logdir: LogdirOpt = None,
    json_out: JsonFlag = False,
    *,
    build: BuildArgs,
    coordinator: Annotated[
        str | None, typer.Option("--coordinator", help="HOST:PORT of process 0, to train as one of several processes.")
    ] = None,
    num_processes: Annotated[int | None, typer.Option("--num-processes", help="Processes in the job.")] = None,
    process_id: Annotated[int | None, typer.Option("--process-id", help="This process's index, from 0.")] = None,
) -> None:
    """Train SPEC on the arrays of an .npz as its train: section says, on the fast path.

    The .npz holds one array per spec input and per target named under train.targets; a
    held-out split (train.eval_split) is evaluated after every epoch. The data is checked
    before the first step (non-finite values, label dtype and range, target shapes). With
    --out, an orbax checkpoint (model state, optimizer state, step) is written after every
    epoch, and --resume continues the same run: same batches, same loss curve. Every
    step's and epoch's metrics go to metrics.jsonl in --out (or in --logdir without
    --out); --logdir also writes them as TensorBoard event files.

    Examples:

      nnx-build train specs/digits_cnn.yaml --data digits.npz --out ckpt/digits

      nnx-build train specs/digits_cnn.yaml --data digits.npz --out ckpt/digits --epochs 4

      nnx-build train specs/digits_cnn.yaml --data digits.npz --out ckpt/digits --resume

      nnx-build train specs/digits_cnn.yaml --data digits.npz --out ckpt/digits --logdir runs/digits
      nnx-build train spec.yaml --data d.npz --weights model.safetensors --out ckpt/tuned

      nnx-build train spec.yaml --data d.npz --json | tail -1 | jq .eval.accuracy

      nnx-build export specs/digits_cnn.yaml --weights ckpt/digits --out build/digits
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..distributed import init_distributed
    from ..training import CheckpointStore, TrainError, prepare
    from ..training.runlog import RunLog

    init_distributed(coordinator, num_processes, process_id)  # or JAX_COORDINATOR_ADDRESS/... (nnx-build launch)
    options = build.options()
    std_console, err_console = console(), console(stderr=True)
    if resume and out is None:
        raise TrainError("--resume needs --out CKPT_DIR (the directory holding the checkpoints)")
    if resume and force:
        raise TrainError("--resume and --force contradict each other: --force deletes the checkpoints --resume needs")
    if out is not None and out.exists() and not out.is_dir():
        raise TrainError(f"--out {out} exists and is not a directory")

    if resume and out is not None and not out.is_dir():
        raise TrainError(f"--out {out} does not exist: there is nothing to resume; train without --resume to start")

    with err_console.status(f"building {spec} and reading {data}"):
        trainer = prepare(spec, data, options=options)
    store = None
    if resume and out is not None:
        store = CheckpointStore(out)
        try:
            trainer.check_resume(store)  # a changed spec, optimizer, schedule or data: refused before anything runs
        except BaseException:
            store.close()
            raise
    total_epochs = trainer.plan.train.epochs if epochs is None else epochs
    n_train, n_eval = len(trainer.data.train_idx), len(trainer.data.eval_idx)
    n_params = sum(int(v.size) for v in trainer.params.values())
    std_console.print(
        f"{type(trainer.model).__name__}: training {n_params:,} values of kind {', '.join(trainer.kinds)} "
        f"(wrt {trainer.plan.wrt_description}) on {n_train} examples, "
        f"{n_eval} held out; batch {trainer.batch_size}, {trainer.steps_per_epoch} steps per epoch"
    )

    if out is not None and store is None:
        if out.exists() and any(p.name != METRICS_FILE for p in out.iterdir()):
            if not force:
                raise TrainError(f"{out} already holds checkpoints; pass --resume to continue them or --force to start over")
            shutil.rmtree(out)
        store = CheckpointStore(out)

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[metrics]}"),
        TimeElapsedColumn(),
    )
    bar = Progress(*columns, console=err_console, disable=not progress, transient=False)
    task: dict[str, Any] = {}

    def on_start(t: Any) -> None:
        if t.epoch:
            std_console.print(f"resumed from {out} at epoch {t.epoch}, step {t.step}")
        task["id"] = bar.add_task(f"epoch {t.epoch + 1}/{total_epochs}", total=t.steps_per_epoch, metrics="")

    def on_step(i: int, metrics: dict[str, Any]) -> None:
        if progress and (i % 5 == 0 or i == trainer.steps_per_epoch):
            bar.update(task["id"], completed=i, metrics=f"loss {float(metrics['loss']):.4f}")

    def on_epoch(r: Any) -> None:
        line = f"epoch {r.epoch}/{total_epochs}  train: {_fmt(r.train)}"
        if r.eval:
            line += f"  |  eval: {_fmt(r.eval)}"
        line += f"  ({r.seconds:.1f}s)"
        bar.console.print(line) if progress else std_console.print(line)
        if r.epoch < total_epochs:
            bar.reset(task["id"], description=f"epoch {r.epoch + 1}/{total_epochs}", total=trainer.steps_per_epoch, metrics="")

    if out is not None and not resume and (out / METRICS_FILE).exists():
        (out / METRICS_FILE).unlink()  # a run that starts over starts its metrics over
    jsonl = out / METRICS_FILE if out is not None else logdir / METRICS_FILE if logdir is not None else None
    log = RunLog(jsonl, logdir) if jsonl is not None else None
    try:
        with bar:
            result = trainer.fit(
                epochs, store=store, resume=resume, on_step=on_step, on_epoch=on_epoch, on_start=on_start, log=log
            )
    finally:
        if log is not None:
            log.close()
        if store is not None:
            store.close()
    if out is not None:
        std_console.print(f"checkpoint: {out} (step {result.step}); export it with: nnx-build export {spec} --weights {out} --out DIR")
    if logdir is not None:
        std_console.print(f"curves: tensorboard --logdir {logdir}")
    if json_out:
        print(json.dumps(result.to_json()))
