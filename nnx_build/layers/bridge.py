"""Flax Linen layers in a spec, through ``nnx.bridge`` (the seed's migration path).

``- dense: {type: Linen, layer: Dense, args: {features: 64}, in_shape: [32]}`` builds
``nnx.bridge.ToNNX(flax.linen.Dense(features=64), rngs=rngs)`` and initialises it at
once (``lazy_init``) on zeros of shape ``(1, *in_shape)``, so its variables exist
eagerly like any NNX layer's: ``model.dense.kernel`` is an ``nnx.Param``, Linen's
``batch_stats`` become ``nnx.BatchStat``s. It builds, trains, checkpoints and exports
like any other step.

Only the Linen layers of :data:`ALLOWED` can be named (nothing named in a spec is
imported). ``model.train()`` / ``model.eval()`` drive Linen's ``deterministic``
(Dropout) and ``use_running_average`` (BatchNorm) call arguments.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import jax.numpy as jnp
from flax import linen, nnx
from pydantic import Field, model_validator

from ..layer_table import register
from ..schemas.common import Config

__all__ = ["ALLOWED", "LinenConfig", "LinenLayer"]

#: Linen layers a spec may wrap: name -> (input dtype, needs in_shape)
ALLOWED: dict[str, tuple[str, bool]] = {
    "Dense": ("float32", True),
    "Conv": ("float32", True),
    "LayerNorm": ("float32", True),
    "BatchNorm": ("float32", True),
    "Dropout": ("float32", False),
    "Embed": ("int32", False),
}


class LinenLayer(nnx.bridge.ToNNX):
    """An ``nnx.bridge.ToNNX`` whose Linen train/eval call arguments follow ``train()`` / ``eval()``."""

    def __init__(self, module: linen.Module, *, rngs: nnx.Rngs):
        super().__init__(module, rngs=rngs)
        self.to_nnx__deterministic = False
        self.to_nnx__use_running_average = False

    @property
    def deterministic(self) -> bool:
        return self.to_nnx__deterministic

    @deterministic.setter
    def deterministic(self, value: bool) -> None:
        self.to_nnx__deterministic = value

    @property
    def use_running_average(self) -> bool:
        return self.to_nnx__use_running_average

    @use_running_average.setter
    def use_running_average(self, value: bool) -> None:
        self.to_nnx__use_running_average = value

    def __call__(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        module = self.to_nnx__module
        if isinstance(module, linen.Dropout):
            kwargs.setdefault("deterministic", self.to_nnx__deterministic)
        elif isinstance(module, linen.BatchNorm):
            ura = kwargs.setdefault("use_running_average", self.to_nnx__use_running_average)
            kwargs.setdefault("mutable", False if ura else ["batch_stats"])
        return super().__call__(*args, **kwargs)


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def _fields(name: str) -> dict[str, dataclasses.Field[Any]]:
    cls = getattr(linen, name)
    return {f.name: f for f in dataclasses.fields(cls) if f.name not in ("parent", "name") and f.init}


class LinenConfig(Config):
    """A Flax Linen layer wrapped by ``nnx.bridge.ToNNX`` and initialised eagerly.

    ``layer`` is one of Dense, Conv, LayerNorm, BatchNorm, Dropout, Embed; ``args`` are the
    Linen constructor's arguments (``{features: 64}``; lists become tuples; ``dtype`` and
    ``param_dtype`` by name). ``in_shape`` is one example's input shape without the batch
    dimension, used to create the variables (not needed by Dropout and Embed). Variables
    sit on the step: ``model.step.kernel``; Linen's batch_stats are ``BatchStat``s.
    """

    type: Literal["Linen"] = "Linen"
    layer: Literal["Dense", "Conv", "LayerNorm", "BatchNorm", "Dropout", "Embed"]
    args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the Linen constructor")
    in_shape: list[int] | None = Field(default=None, description="one example's input shape (without batch), for initialisation")

    @model_validator(mode="after")
    def _check(self) -> LinenConfig:
        from ..errors import did_you_mean

        fields = _fields(self.layer)
        for k in self.args:
            if k not in fields:
                raise ValueError(f"linen.{self.layer} has no argument '{k}'{did_you_mean(k, fields)}; its arguments: {', '.join(fields)}")
        missing = [n for n, f in fields.items()
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and n not in self.args]
        if missing:
            raise ValueError(f"linen.{self.layer} needs args: {', '.join(missing)}")
        if ALLOWED[self.layer][1] and self.in_shape is None:
            raise ValueError(f"linen.{self.layer} needs in_shape: one example's input shape without the batch dimension, e.g. [32]")
        if self.in_shape is not None and any(d < 1 for d in self.in_shape):
            raise ValueError(f"in_shape sizes must be positive, received {self.in_shape}")
        return self

    def linen_module(self) -> linen.Module:
        args = _tuples(dict(self.args))
        for k in ("dtype", "param_dtype"):
            if isinstance(args.get(k), str):
                args[k] = jnp.dtype(args[k])
        return getattr(linen, self.layer)(**args)


def build_linen(cfg: LinenConfig, *, rngs: nnx.Rngs) -> LinenLayer:
    layer = LinenLayer(cfg.linen_module(), rngs=rngs)
    if cfg.layer == "Dropout":
        return layer  # no variables
    dtype, _ = ALLOWED[cfg.layer]
    shape = tuple(cfg.in_shape) if cfg.in_shape is not None else (1,)
    x = jnp.zeros((1, *shape), dtype)
    if cfg.layer == "BatchNorm":
        nnx.bridge.lazy_init(layer, x, use_running_average=False)
    else:
        nnx.bridge.lazy_init(layer, x)
    return layer


def check_linen(cfg: LinenConfig, x: Any, *rest: Any, **kw: Any) -> str | None:
    if cfg.in_shape is None or not hasattr(x, "shape"):
        return None
    got = tuple(x.shape[1:])
    want = tuple(cfg.in_shape)
    if len(got) != len(want) or any(isinstance(g, int) and g != w for g, w in zip(got, want, strict=False)):
        shown = ", ".join(str(d) for d in got)
        return f"was initialised for in_shape {list(want)} but its input has shape (batch, {shown}); set in_shape: [{shown}]"
    return None


register("Linen", LinenConfig, build_linen, kind="layer", check=check_linen, nnx_cls=nnx.bridge.ToNNX, group="bridge")
