"""The ``train:`` section of a spec, as pydantic models.

Names (optimizers, schedules, gradient clipping, losses, metrics) are checked here,
with a did-you-mean: optax's names against fixed lists, losses and metrics against the
tables of :mod:`nnx_build.training.objectives` (which import no JAX). Arguments are
checked against the real signatures by ``nnx-build check`` and when training starts
(:mod:`nnx_build.training.plan`), so loading a spec does not import optax.

Example::

    train:
      targets: {y: {dtype: int32}}               # arrays of the .npz besides the inputs
      loss: softmax_cross_entropy_with_integer_labels
      metrics: [accuracy]
      optimizer:
        type: adamw
        learning_rate: {type: warmup_cosine_decay_schedule, init_value: 0.0, peak_value: 0.003,
                        warmup_steps: 50, decay_steps: "${total_steps}"}
        weight_decay: 0.0001
      clip: 1.0                                  # clip_by_global_norm(1.0)
      wrt: [Param]                               # or {include: [Param], exclude: [Frozen]}
      batch_size: 64
      epochs: 12
      seed: 0
      eval_split: 0.15
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ..training.objectives import LOSSES, METRICS
from .common import DTypeName

__all__ = [
    "CLIPS",
    "ClipSpec",
    "LossSpec",
    "MetricSpec",
    "OPTIMIZERS",
    "OptimizerSpec",
    "SCHEDULES",
    "ScheduleSpec",
    "TargetSpec",
    "TrainSpec",
    "WrtSpec",
    "choice",
    "enum_of",
]

Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]

#: optax optimizers (``optax.<name>(learning_rate, ...)``) usable by name
OPTIMIZERS = (
    "adabelief", "adadelta", "adafactor", "adagrad", "adam", "adamax", "adamaxw", "adamw", "adan",
    "amsgrad", "fromage", "lamb", "lars", "lion", "nadam", "nadamw", "noisy_sgd", "novograd",
    "optimistic_adam", "optimistic_gradient_descent", "radam", "rmsprop", "rprop", "sgd", "sign_sgd",
    "signum", "sm3", "yogi",
)
#: optax learning-rate schedules usable by name
SCHEDULES = (
    "constant_schedule", "cosine_decay_schedule", "cosine_onecycle_schedule", "exponential_decay",
    "linear_onecycle_schedule", "linear_schedule", "piecewise_constant_schedule", "polynomial_schedule",
    "warmup_constant_schedule", "warmup_cosine_decay_schedule", "warmup_exponential_decay_schedule",
)
#: optax gradient transformations applied before the optimizer
CLIPS = ("clip", "clip_by_global_norm", "clip_by_block_rms", "adaptive_grad_clip")
#: loss and metric names come from the tables of nnx_build.training.objectives (no JAX
#: import), read when a value is checked or the schema written: a loss added to the table
#: (or by a plugin) is accepted everywhere


def choice(kind: str, names: Collection[str] | Callable[[], Collection[str]]) -> Any:
    """A validator accepting the strings of ``names`` (a collection, or a function giving
    one; read when a value is checked), with a did-you-mean."""

    def check(value: str) -> str:
        from ..errors import did_you_mean

        known = list(names() if callable(names) else names)
        if value not in known:
            raise ValueError(f"unknown {kind} '{value}'{did_you_mean(value, known)}; expected one of {', '.join(known)}")
        return value

    return AfterValidator(check)


def enum_of(names: Collection[str] | Callable[[], Collection[str]]) -> Any:
    """A ``Field`` whose JSON Schema ``enum`` is ``names``, read when the schema is written."""

    def extra(schema: dict[str, Any]) -> None:
        schema["enum"] = list(names() if callable(names) else names)

    return Field(json_schema_extra=extra)


class _Named(BaseModel):
    """A named optax object; fields besides ``type`` are its keyword arguments."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"type": data} if isinstance(data, str) else data

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})


class ScheduleSpec(_Named):
    """An optax schedule: ``{type: cosine_decay_schedule, init_value: 0.001, decay_steps: "${total_steps}"}``.

    Arguments may use ``${total_steps}``, ``${steps_per_epoch}``, ``${epochs}`` and the spec's args.
    """

    type: Annotated[str, choice("schedule", SCHEDULES), Field(json_schema_extra={"enum": list(SCHEDULES)})]


class OptimizerSpec(_Named):
    """An optax optimizer by name with its arguments: ``{type: adamw, learning_rate: 0.001, weight_decay: 0.0001}``.

    ``learning_rate`` is a number or a schedule.
    """

    type: Annotated[str, choice("optimizer", OPTIMIZERS), Field(json_schema_extra={"enum": list(OPTIMIZERS)})]
    learning_rate: float | str | ScheduleSpec | None = Field(default=None, description="a number or a schedule")


class ClipSpec(_Named):
    """Gradient clipping applied before the optimizer: ``1.0`` is ``{type: clip_by_global_norm, max_norm: 1.0}``."""

    type: Annotated[str, choice("gradient clipping", CLIPS), Field(json_schema_extra={"enum": list(CLIPS)})]

    @model_validator(mode="before")
    @classmethod
    def _number(cls, data: Any) -> Any:
        if isinstance(data, int | float) and not isinstance(data, bool):
            return {"type": "clip_by_global_norm", "max_norm": float(data)}
        return data


class LossSpec(_Named):
    """A loss term: ``{type: mean_squared_error, output: head, target: y, weight: 1.0}``.

    ``output`` defaults to the model's only (or first) output, ``target`` to the only target.
    """

    type: Annotated[str, choice("loss", LOSSES), enum_of(LOSSES)]
    output: Name | None = Field(default=None, description="a model output; default the first")
    target: Name | None = Field(default=None, description="a target array; default the only one")
    weight: float = Field(default=1.0, description="factor of this term in the total loss")


class MetricSpec(_Named):
    """A metric computed on each batch and on the held-out split: ``accuracy`` or ``{type: top_k_accuracy, k: 5}``."""

    type: Annotated[str, choice("metric", METRICS), enum_of(METRICS)]
    output: Name | None = None
    target: Name | None = None
    name: Name | None = Field(default=None, description="key in the reported metrics; default the type")


class TargetSpec(BaseModel):
    """A target array of the data file: its dtype (default: as stored) and per-example shape."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    dtype: DTypeName | None = Field(default=None, description="cast to this dtype; default as stored")
    shape: list[int] | None = Field(default=None, description="shape of one example (without the batch dimension)")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if data is None:
            return {}
        return {"dtype": data} if isinstance(data, str) else data


class WrtSpec(BaseModel):
    """Variable kinds that train: the ``include`` kinds and the kinds declared on them, minus ``exclude``.

    NNX kind filters match subclasses: ``include: [Param]`` also trains ``LoRAParam`` and every
    kind declared with ``base: Param``; ``exclude: [Frozen]`` leaves such a kind alone.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    include: list[Name] = Field(default_factory=lambda: ["Param"], min_length=1, description="kinds that train (with their subkinds)")
    exclude: list[Name] = Field(default_factory=list, description="kinds (and their subkinds) that do not train")


class TrainSpec(BaseModel):
    """How ``nnx-build train`` trains the model."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    targets: dict[Name, TargetSpec] = Field(
        default_factory=lambda: {"y": TargetSpec()}, description="target arrays of the data file (besides the inputs)"
    )
    loss: list[LossSpec] = Field(description="a loss, or a list of weighted loss terms", min_length=1)
    metrics: list[MetricSpec] = Field(default_factory=list, description="metrics besides the loss")
    optimizer: OptimizerSpec = Field(
        default_factory=lambda: OptimizerSpec(type="adam", learning_rate=1e-3), description="an optax optimizer by name"
    )
    clip: ClipSpec | None = Field(default=None, description="gradient clipping; a number is clip_by_global_norm")
    wrt: list[str] | WrtSpec = Field(
        default_factory=lambda: ["Param"],
        description="variable kinds that train (Param, LoRAParam, a declared kind; with their subkinds), "
        "or {include: [...], exclude: [...]}",
    )
    batch_size: int = Field(default=32, gt=0)
    epochs: int = Field(default=10, ge=0)
    seed: int = Field(default=0, description="seed of the held-out split, the data order and dropout")
    eval_split: float = Field(default=0.1, ge=0.0, lt=1.0, description="fraction of examples held out for evaluation")
    eval_batch_size: int | None = Field(default=None, gt=0, description="default: batch_size")
    shuffle: bool = True
    doc: str = ""

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if isinstance(data.get("wrt"), str):
                data["wrt"] = [data["wrt"]]
            if "loss" in data and not isinstance(data["loss"], list):
                data["loss"] = [data["loss"]]
            if isinstance(data.get("targets"), list):
                data["targets"] = {t: {} for t in data["targets"]}
        return data

    @property
    def losses(self) -> list[LossSpec]:
        return list(self.loss)

    @property
    def wrt_include(self) -> list[str]:
        """The kinds that train, with their subkinds."""
        return list(self.wrt.include if isinstance(self.wrt, WrtSpec) else self.wrt)

    @property
    def wrt_exclude(self) -> list[str]:
        """The kinds (and subkinds) that ``wrt`` leaves out."""
        return list(self.wrt.exclude) if isinstance(self.wrt, WrtSpec) else []
