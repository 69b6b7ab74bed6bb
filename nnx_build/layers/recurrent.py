"""Catalogue entries: recurrent cells and the layers that scan them over a sequence.

A cell on its own is called as ``cell(carry, x) -> (carry, y)`` on one time step
(``initialize_carry`` gives a zero carry); ``RNN`` scans a cell over the time axis and
``Bidirectional`` runs two ``RNN``s in opposite directions and concatenates them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from flax import nnx
from pydantic import Field

from ..schemas.common import Activation, Config, DType, Init
from ..text import fmt_shape
from ._base import nnx_layer


class _CellConfig(Config):
    in_features: int = Field(gt=0)
    hidden_features: int = Field(gt=0)
    positional = ("in_features", "hidden_features")
    kernel_init: Init | None = None
    recurrent_kernel_init: Init | None = None
    bias_init: Init | None = None
    dtype: DType | None = None
    param_dtype: DType | None = None
    carry_init: Init | None = None
    keep_rngs: bool = False


class _GatedCellConfig(_CellConfig):
    gate_fn: Activation | None = None
    activation_fn: Activation | None = None


class LSTMCellConfig(_GatedCellConfig):
    """``nnx.LSTMCell``: one step of a long short-term memory cell.

    Called as ``cell((c, h), x) -> ((c, h), h)``: input ``x`` ``(batch..., in_features)``,
    carry ``c`` and ``h`` and output ``(batch..., hidden_features)``. ``gate_fn``
    (default ``sigmoid``) and ``activation_fn`` (default ``tanh``) are activation names.

    Usually given as an ``RNN``'s ``cell:``. On its own in a spec, its carry pair comes
    from another step, e.g. ``as: [carry, y]`` of an ``RNN`` with ``return_carry: true``,
    then ``in: [carry, x_t]``.
    """

    type: Literal["LSTMCell"] = "LSTMCell"


class OptimizedLSTMCellConfig(_GatedCellConfig):
    """``nnx.OptimizedLSTMCell``: an LSTM cell computing its four gates in one matmul.

    Called as ``cell((c, h), x) -> ((c, h), h)``: input ``x`` ``(batch..., in_features)``,
    carry ``c`` and ``h`` and output ``(batch..., hidden_features)``. As for ``LSTMCell``,
    a spec feeds it a carry pair made by another step (an ``RNN`` with ``return_carry``).
    """

    type: Literal["OptimizedLSTMCell"] = "OptimizedLSTMCell"


class GRUCellConfig(_GatedCellConfig):
    """``nnx.GRUCell``: one step of a gated recurrent unit.

    Called as ``cell(h, x) -> (h, h)``: input ``x`` ``(batch..., in_features)``, carry
    ``h`` and output ``(batch..., hidden_features)``.
    """

    type: Literal["GRUCell"] = "GRUCell"


class SimpleCellConfig(_CellConfig):
    """``nnx.SimpleCell``: an Elman cell, ``h' = activation_fn(x W + h U + b)`` (plus ``h`` if ``residual``).

    Called as ``cell(h, x) -> (h', h')``: input ``x`` ``(batch..., in_features)``, carry
    ``h`` and output ``(batch..., hidden_features)``.
    """

    type: Literal["SimpleCell"] = "SimpleCell"
    residual: bool = False
    activation_fn: Activation | None = None


CELLS: dict[str, tuple[type[_CellConfig], type[nnx.Module]]] = {
    "LSTMCell": (LSTMCellConfig, nnx.LSTMCell),
    "OptimizedLSTMCell": (OptimizedLSTMCellConfig, nnx.OptimizedLSTMCell),
    "GRUCell": (GRUCellConfig, nnx.GRUCell),
    "SimpleCell": (SimpleCellConfig, nnx.SimpleCell),
}

CellConfig = Annotated[
    LSTMCellConfig | OptimizedLSTMCellConfig | GRUCellConfig | SimpleCellConfig,
    Field(discriminator="type"),
]


def _shape(x: Any) -> str:
    return fmt_shape(x.shape)


def _features(x: Any, want: int, what: str) -> str | None:
    if not hasattr(x, "shape") or len(x.shape) < 1:
        return f"expects {what} with a last dimension of in_features={want}, received {type(x).__name__}"
    got = x.shape[-1]
    if isinstance(got, int) and got != want:
        return f"expects in_features={want} to match the last dimension of {what}, received shape {_shape(x)}; set in_features: {got}"
    return None


def _cell_check(cfg: _CellConfig, *args: Any, **kw: Any) -> str | None:
    x = kw.get("inputs", args[1] if len(args) > 1 else None)
    if x is None:
        return "is called as cell(carry, inputs): give two inputs, in: [carry, x]"
    return _features(x, cfg.in_features, "its inputs")


def _build_cell(cfg: _CellConfig, *, rngs: nnx.Rngs) -> nnx.Module:
    args, kw = cfg.call_args()
    return CELLS[cfg.type][1](*args, **kw, rngs=rngs)


for _name, (_cfg, _cls) in CELLS.items():
    nnx_layer(_cfg, _cls, check=_cell_check, build=_build_cell, group="recurrent")


class RNNConfig(Config):
    """``nnx.RNN``: scans the nested ``cell`` over the time axis of a sequence.

    ``cell`` is a cell's config, e.g. ``{type: LSTMCell, in_features: 8, hidden_features: 16}``.
    Input ``(batch..., time, in_features)`` (``(time, batch..., in_features)`` with
    ``time_major``); output ``(batch..., time, hidden_features)``, or
    ``(carry, outputs)`` with ``return_carry`` (name both: ``as: [carry, y]``).
    ``reverse`` runs backwards; ``keep_order`` then flips the outputs back.
    """

    type: Literal["RNN"] = "RNN"
    cell: CellConfig
    time_major: bool = False
    return_carry: bool = False
    reverse: bool = False
    keep_order: bool = False
    unroll: int = Field(default=1, ge=1)


def _rnn_kwargs(cfg: Config) -> dict[str, Any]:
    kw = cfg.kwargs()
    for nested in ("cell", "forward_rnn", "backward_rnn"):
        kw.pop(nested, None)
    return kw


def _build_rnn(cfg: RNNConfig, *, rngs: nnx.Rngs) -> nnx.RNN:
    # as hand-written: nnx.RNN(nnx.LSTMCell(..., rngs=rngs), ...)
    return nnx.RNN(_build_cell(cfg.cell, rngs=rngs), **_rnn_kwargs(cfg))


def _seq_check(cfg: RNNConfig, x: Any = None, *rest: Any, **kw: Any) -> str | None:
    x = kw.get("inputs", x)
    if x is None:
        return "needs an input sequence (batch..., time, in_features)"
    if hasattr(x, "shape") and len(x.shape) < 2:
        return f"expects a sequence (batch..., time, in_features), received shape {_shape(x)}"
    return _features(x, cfg.cell.in_features, "its input sequence")


nnx_layer(RNNConfig, nnx.RNN, check=_seq_check, build=_build_rnn, group="recurrent")


class BidirectionalConfig(Config):
    """``nnx.Bidirectional``: a forward and a backward ``RNN`` whose outputs are concatenated.

    ``forward_rnn`` and ``backward_rnn`` are RNN configs (their own ``type: RNN`` may be
    left out). Input ``(batch..., time, in_features)``; output
    ``(batch..., time, forward hidden_features + backward hidden_features)``, or
    ``((forward carry, backward carry), outputs)`` with ``return_carry``.
    """

    type: Literal["Bidirectional"] = "Bidirectional"
    forward_rnn: RNNConfig
    backward_rnn: RNNConfig
    time_major: bool = False
    return_carry: bool = False


def _build_bidirectional(cfg: BidirectionalConfig, *, rngs: nnx.Rngs) -> nnx.Bidirectional:
    # as hand-written: the forward cell is created first, then the backward one
    forward = _build_rnn(cfg.forward_rnn, rngs=rngs)
    backward = _build_rnn(cfg.backward_rnn, rngs=rngs)
    return nnx.Bidirectional(forward, backward, **_rnn_kwargs(cfg))


def _bi_check(cfg: BidirectionalConfig, x: Any = None, *rest: Any, **kw: Any) -> str | None:
    return _seq_check(cfg.forward_rnn, x, *rest, **kw) or _seq_check(cfg.backward_rnn, x, *rest, **kw)


nnx_layer(BidirectionalConfig, nnx.Bidirectional, check=_bi_check, build=_build_bidirectional, group="recurrent")
