"""Orbax checkpoints of a training run: model state, optimizer state, step and history.

Layout (an ``orbax.checkpoint.CheckpointManager`` directory, one step per epoch end)::

    CKPT_DIR/
      <step>/model/       the pure dict of the model's non-RNG state (nnx.to_pure_dict
                          layout, keys as strings: {"linear": {"kernel": ...}})
      <step>/opt_state/   the optimizer state's leaves {"0": ..., "1": ...} (the tree
                          structure comes from the optimizer the spec describes; absent
                          for an optimizer without state, such as plain sgd)
      <step>/meta/        JSON: step, epoch, per-epoch history, wrt, seed and the run's
                          fingerprint (model hash, optimizer, schedule, setup, data hash)
                          that a resume must match

Writes are atomic: orbax writes each step into a temporary folder
(``<step>.orbax-checkpoint-tmp-*``) and renames it to ``<step>`` once every item is
complete, so an interrupted save leaves no ``<step>`` folder and ``latest_step`` never
sees a partial checkpoint. Saves are synchronous (``enable_async_checkpointing=False``).

:func:`read_model_weights` reads the model part of the latest (or a given) step as the
flat ``{"linear/kernel": array}`` dict the exporters' weights loader uses.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import NnxBuildError
from ..logs import quiet_logger
from ..text import first_line

__all__ = ["CheckpointError", "CheckpointStore", "flat_to_nested", "nested_to_flat", "read_model_weights"]

MAX_TO_KEEP = 3


class CheckpointError(NnxBuildError):
    pass


def flat_to_nested(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a/b": x}`` -> ``{"a": {"b": x}}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, last = key.split("/")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


def nested_to_flat(nested: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": x}}`` -> ``{"a/b": x}``."""
    if not isinstance(nested, dict):
        return {prefix: nested}
    out: dict[str, Any] = {}
    for k, v in nested.items():
        out.update(nested_to_flat(v, f"{prefix}/{k}" if prefix else str(k)))
    return out


def _ocp() -> Any:
    import orbax.checkpoint as ocp

    return ocp



def _abstract(tree: Any) -> Any:
    """Restore targets; a ``jax.Array`` keeps its sharding, so a checkpoint written on one mesh
    is read onto this run's devices (another mesh, or one device) directly."""
    import jax

    def target(a: Any) -> Any:
        dtype = np.asarray(a).dtype if not hasattr(a, "dtype") else a.dtype
        sharding = a.sharding if isinstance(a, jax.Array) else None
        return jax.ShapeDtypeStruct(np.shape(a), dtype, sharding=sharding)

    return jax.tree.map(target, tree)


class CheckpointStore:
    """One training run's checkpoints in ``directory``."""

    def __init__(self, directory: str | os.PathLike[str], *, max_to_keep: int = MAX_TO_KEEP):
        ocp = _ocp()
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False)
        with quiet_logger("absl"):  # orbax logs "Metadata file does not exist" through absl
            self.manager = ocp.CheckpointManager(self.directory, options=options)

    def __enter__(self) -> CheckpointStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        with quiet_logger("absl"):
            self.manager.close()

    def latest_step(self) -> int | None:
        with quiet_logger("absl"):
            return self.manager.latest_step()

    def save(self, step: int, model: dict[str, Any], opt_leaves: list[Any], meta: dict[str, Any]) -> None:
        """Saves flat model weights, the optimizer state's leaves and JSON metadata at ``step``."""
        ocp = _ocp()
        items = {"model": ocp.args.StandardSave(flat_to_nested(model)), "meta": ocp.args.JsonSave(meta)}
        if opt_leaves:  # a stateless optimizer (plain sgd) has no leaves, and orbax refuses an empty item
            items["opt_state"] = ocp.args.StandardSave({str(i): leaf for i, leaf in enumerate(opt_leaves)})
        args = ocp.args.Composite(**items)
        with quiet_logger("absl"):
            self.manager.save(step, args=args, force=True)
            self.manager.wait_until_finished()

    def read_meta(self, step: int | None = None) -> dict[str, Any]:
        """The JSON metadata of ``step`` (default the latest), read before anything else is restored."""
        ocp = _ocp()
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"{self.directory} holds no checkpoint to resume from; train without --resume to start a run there")
        try:
            with quiet_logger("absl"):
                out = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{self.directory}: step {step} is not an nnx-build training checkpoint "
                                  f"({first_line(e).strip(repr(chr(39)))})") from e
        return dict(out["meta"])

    def restore(self, step: int | None, model_like: dict[str, Any], opt_like: list[Any]) -> tuple[dict[str, Any], list[Any], dict[str, Any]]:
        """Restores ``(flat model weights, optimizer leaves, meta)``; shapes must match the templates."""
        ocp = _ocp()
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"{self.directory} holds no checkpoint to resume from")
        with quiet_logger("absl"):
            saved = self.manager.item_metadata(step)
        saved_model = nested_to_flat(_tree_of(saved["model"])) if saved and saved.get("model") is not None else None
        if saved_model is not None:
            _compare(saved_model, model_like, self.directory)
        items = {"model": ocp.args.StandardRestore(_abstract(flat_to_nested(model_like))), "meta": ocp.args.JsonRestore()}
        if opt_like:
            items["opt_state"] = ocp.args.StandardRestore(_abstract({str(i): leaf for i, leaf in enumerate(opt_like)}))
        args = ocp.args.Composite(**items)
        try:
            with quiet_logger("absl"):
                out = self.manager.restore(step, args=args)
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{self.directory}: checkpoint {step} does not fit this spec's training state: {first_line(e)}") from e
        leaves = [out["opt_state"][str(i)] for i in range(len(opt_like))]
        return nested_to_flat(out["model"]), leaves, dict(out["meta"])



def _tree_of(meta: Any) -> Any:
    tree = getattr(meta, "tree", meta)
    return dict(tree) if isinstance(tree, dict) else tree


def _compare(saved: dict[str, Any], like: dict[str, Any], where: Path) -> None:
    problems = []
    for k, v in like.items():
        if k not in saved:
            problems.append(f"'{k}' is missing")
        elif tuple(saved[k].shape) != tuple(np.shape(v)):
            problems.append(f"'{k}' has shape {tuple(saved[k].shape)}, the spec needs {tuple(np.shape(v))}")
    problems += [f"'{k}' is not a variable of the model" for k in saved if k not in like]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise CheckpointError(f"{where}: the checkpoint does not fit the spec: " + "; ".join(problems[:3]) + more)


def _model_dir(path: Path) -> Path:
    """The ``model`` item folder of a checkpoint directory, a step folder or the item itself."""
    if (path / "model").is_dir():
        return path / "model"
    if (path / "_METADATA").is_file() or (path / "_sharding").exists() or (path / "manifest.ocdbt").exists():
        return path
    steps = sorted(int(p.name) for p in path.iterdir() if p.is_dir() and p.name.isdigit() and (p / "model").is_dir())
    if not steps:
        raise CheckpointError(f"{path} is not an nnx-build checkpoint directory (no <step>/model folder)")
    return path / str(steps[-1]) / "model"


def read_model_weights(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The model weights of a checkpoint (the latest step of a run directory) as ``{"a/b": array}``."""
    import jax

    ocp = _ocp()
    item = _model_dir(Path(path).absolute())
    checkpointer = ocp.StandardCheckpointer()
    try:
        meta = checkpointer.metadata(item)
        tree = _tree_of(getattr(meta, "item_metadata", meta))
        device = jax.devices("cpu")[0]
        sharding = jax.sharding.SingleDeviceSharding(device)
        target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype, sharding=sharding), tree)
        restored = checkpointer.restore(item, target)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"cannot read checkpoint {item}: {e}") from e
    finally:
        checkpointer.close()
    return {k: np.asarray(v) for k, v in nested_to_flat(restored).items()}
