"""Every activation that ``flax.nnx`` exports, as an op: ``- relu`` or ``- {type: softmax, axis: -1}``.

Array arguments (``where`` masks) are passed as named inputs: ``in: {x: h, where: mask}``.
"""

from __future__ import annotations

from typing import Any, Literal

from flax import nnx
from pydantic import create_model

from ..schemas.common import ACTIVATIONS, Config, DType
from ._base import nnx_layer, op

# activation -> its static keyword arguments: name -> (type, default)
_FIELDS: dict[str, dict[str, tuple[Any, Any]]] = {
    "celu": {"alpha": (float, 1.0)},
    "elu": {"alpha": (float, 1.0)},
    "gelu": {"approximate": (bool, True)},
    "glu": {"axis": (int, -1)},
    "leaky_relu": {"negative_slope": (float, 0.01)},
    "log_softmax": {"axis": (int | list[int], -1)},
    "softmax": {"axis": (int | list[int], -1)},
    "logsumexp": {"axis": (int | list[int] | None, None), "keepdims": (bool, False)},
    "standardize": {"axis": (int | list[int], -1), "epsilon": (float, 1e-5)},
}
_EXTRA = ("logsumexp", "standardize", "one_hot")


def _make(name: str, fields: dict[str, tuple[Any, Any]], doc: str) -> type[Config]:
    model = create_model(
        f"{name.title().replace('_', '')}Config",
        __base__=Config,
        __doc__=doc,
        type=(Literal[name], name),  # type: ignore[valid-type]
        **fields,
    )
    return model


def _apply(name: str):
    def apply(cfg: Config, *xs: Any, **kw: Any) -> Any:
        # looked up at each call: the ONNX converter replaces nnx.relu, nnx.gelu, ... while
        # it traces, to write Relu, Gelu, ... nodes instead of their arithmetic
        return getattr(nnx, name)(*xs, **cfg.kwargs(), **kw)

    apply.__name__ = name
    return apply


for _name in (*ACTIVATIONS, *_EXTRA):
    if _name == "one_hot":
        continue
    _doc = f"``nnx.{_name}``, elementwise or along ``axis``; output shape equals input shape."
    if _name == "logsumexp":
        _doc = "``nnx.logsumexp`` over ``axis`` (reduces it unless ``keepdims``)."
    if _name == "glu":
        _doc = "``nnx.glu``: halves ``axis`` (gated linear unit)."
    op(_make(_name, _FIELDS.get(_name, {}), _doc), group="activations")(_apply(_name))


class OneHotConfig(Config):
    """``nnx.one_hot``: integer ids ``(...)`` to ``(..., num_classes)``."""

    type: Literal["one_hot"] = "one_hot"
    num_classes: int
    dtype: DType | None = None
    axis: int = -1


@op(OneHotConfig, group="activations")
def one_hot(cfg: OneHotConfig, x: Any) -> Any:
    return nnx.one_hot(x, **cfg.kwargs())


# ---- activations with parameters (flax.nnx.nn.activations.PReLU) -------------------------


class PReLUConfig(Config):
    """``nnx.PReLU``: leaky ReLU whose negative slope is a learned scalar ``Param``.

    Input and output: any shape ``(...)``.
    """

    type: Literal["PReLU"] = "PReLU"
    positional = ("negative_slope_init",)
    negative_slope_init: float = 0.01
    dtype: DType | None = None
    param_dtype: DType | None = None


nnx_layer(PReLUConfig, nnx.PReLU)
