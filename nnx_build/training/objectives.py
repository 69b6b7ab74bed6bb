"""The loss and metric tables: one entry per name, the only list of them.

Each entry names its function lazily (``"module:attribute"``), so this module, and the
schema that derives its ``enum`` from it (:mod:`nnx_build.schemas.train`), import no
JAX. A function takes ``(prediction, target, **args)`` and returns one value per
example; its keyword arguments are the arguments a spec may give, checked against its
signature (:meth:`Objective.check_args`).

``target`` says what the target array holds, which the data checks use before the first
step (:mod:`nnx_build.training.checks`):

* ``"values"``: an array of the prediction's shape (regression, probabilities, 0/1);
* ``"labels"``: integer class labels in ``[0, classes)``, the prediction's shape without
  its last (class) axis;
* ``"labels_or_values"``: either of the two (``accuracy`` takes labels or one-hot rows).

Adding a loss: write ``fn(pred, target, **args)`` in :mod:`nnx_build.training.functions`
and add one line to :data:`LOSSES`; the schema, the reference, ``check`` and the spec
tests pick it up.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["LOSSES", "METRICS", "Objective", "lookup", "names_and_aliases"]

TargetKind = Literal["values", "labels", "labels_or_values"]
_FUNCTIONS = "nnx_build.training.functions"


@dataclass(frozen=True)
class Objective:
    """One loss or metric: its name, function (lazy), description and target kind."""

    name: str
    doc: str
    target: TargetKind = "values"
    fn_ref: str = ""
    aliases: tuple[str, ...] = field(default=())

    @property
    def fn(self) -> Callable[..., Any]:
        """The function ``(prediction, target, **args) -> per-example values`` (imports JAX)."""
        module, _, attr = (self.fn_ref or f"{_FUNCTIONS}:{self.name}").partition(":")
        return getattr(importlib.import_module(module), attr)

    @property
    def arguments(self) -> dict[str, Any]:
        """The keyword arguments besides ``(prediction, target)`` and their defaults."""
        params = list(inspect.signature(self.fn).parameters.values())[2:]
        return {p.name: p.default for p in params}

    def check_args(self, args: Mapping[str, Any]) -> list[tuple[str, str]]:
        """``(argument, problem)`` for every argument the function does not take or cannot use."""
        from ..errors import did_you_mean

        allowed = self.arguments
        problems = []
        for k, v in args.items():
            if k not in allowed:
                problems.append((k, f"{self.name} has no argument '{k}'{did_you_mean(k, allowed)}; "
                                    f"its arguments: {', '.join(allowed) or '(none)'}"))
            elif isinstance(v, bool) or not isinstance(v, int | float | str | type(None)):
                problems.append((k, f"{self.name} argument '{k}' takes a number; received {v!r}"))
        return problems


#: losses: name -> entry (functions in nnx_build.training.functions)
LOSSES: dict[str, Objective] = {o.name: o for o in (
    Objective("mean_squared_error", "mean of (prediction - target)**2", aliases=("mse",)),
    Objective("mean_absolute_error", "mean of |prediction - target|", aliases=("mae",)),
    Objective("huber", "optax.huber_loss (delta)"),
    Objective("log_cosh", "optax.log_cosh"),
    Objective("softmax_cross_entropy", "optax.softmax_cross_entropy; targets are probabilities (one-hot)"),
    Objective("softmax_cross_entropy_with_integer_labels",
              "optax.softmax_cross_entropy_with_integer_labels (label_smoothing); integer labels in [0, classes)",
              target="labels", aliases=("cross_entropy",)),
    Objective("sigmoid_binary_cross_entropy", "optax.sigmoid_binary_cross_entropy; targets in [0, 1]"),
    Objective("sigmoid_focal_loss", "optax.sigmoid_focal_loss (alpha, gamma)"),
    Objective("hinge", "optax.hinge_loss; targets in {-1, 1}"),
    Objective("cosine_distance", "optax.cosine_distance"),
)}

#: metrics: name -> entry
METRICS: dict[str, Objective] = {o.name: o for o in (
    Objective("accuracy", "argmax of the prediction equals the integer label (or the argmax of one-hot targets)",
              target="labels_or_values"),
    Objective("top_k_accuracy", "the label is among the k largest predictions (k)", target="labels_or_values"),
    Objective("binary_accuracy", "(prediction > threshold) equals the 0/1 target (threshold, default 0: logits)"),
    Objective("mean_squared_error", "mean of (prediction - target)**2"),
    Objective("mean_absolute_error", "mean of |prediction - target|"),
)}


def lookup(table: Mapping[str, Objective], name: str, what: str = "loss") -> Objective:
    """The entry named ``name`` or one of its aliases; ``KeyError`` with a did-you-mean otherwise."""
    from ..errors import did_you_mean

    if name in table:
        return table[name]
    for entry in table.values():
        if name in entry.aliases:
            return entry
    raise KeyError(f"unknown {what} '{name}'{did_you_mean(name, table)}; expected one of {', '.join(table)}")


def names_and_aliases(table: Mapping[str, Objective]) -> list[str]:
    """Every name of ``table``, then every alias (``mse``, ``cross_entropy``)."""
    return [*table, *(alias for entry in table.values() for alias in entry.aliases)]
