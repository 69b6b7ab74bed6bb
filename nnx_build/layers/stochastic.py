"""Stochastic layers of ``flax.nnx.nn.stochastic``: Dropout."""

from __future__ import annotations

from typing import Literal

from flax import nnx
from pydantic import Field

from ..schemas.common import Config
from ._base import nnx_layer


class DropoutConfig(Config):
    """``nnx.Dropout``: zeroes a ``rate`` fraction of inputs under ``train()``; identity under ``eval()``."""

    type: Literal["Dropout"] = "Dropout"
    positional = ("rate",)
    rate: float = Field(ge=0.0, le=1.0)
    broadcast_dims: list[int] = Field(default_factory=list)
    deterministic: bool | None = None
    rng_collection: str = "dropout"


nnx_layer(DropoutConfig, nnx.Dropout)
