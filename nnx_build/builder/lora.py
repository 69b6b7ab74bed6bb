"""Declarative LoRA surgery: a step's ``lora:`` option wraps its Linear layers.

``- dense: {type: Linear, in_features: 64, out_features: 10, lora: {rank: 4}}`` builds
the ``nnx.Linear`` as usual, then replaces it by ``nnx.LoRA(64, 4, 10,
base_module=linear)``: ``model.dense.base_module.kernel`` is the original weight and
``model.dense.lora_a`` / ``lora_b`` are ``nnx.LoRAParam``s (``lora_b`` starts at zero,
so the wrapped model computes what the plain one does). On a block use,
``lora: {rank: 4, targets: [fc1]}`` wraps the block's Linear layers (all of them
without ``targets``; a target is an attribute name or a dotted path inside the block).

Train only the adapters with ``train: {wrt: [LoRAParam]}``; ``wrt: [Param]`` trains
both, since ``LoRAParam`` is a ``Param``.
"""

from __future__ import annotations

from typing import Any

from flax import nnx
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LoRAOption", "apply_lora"]


class LoRAOption(BaseModel):
    """A step's ``lora:`` option: ``lora: {rank: 4}`` on a Linear step, ``lora: {rank: 4, targets: [fc1]}`` on a block use.

    The Linear layer becomes ``nnx.LoRA(in, rank, out, base_module=linear)``: its weight
    stays at ``base_module.kernel``, ``lora_a`` / ``lora_b`` are ``LoRAParam``s and
    ``lora_b`` starts at zero, so the wrapped model computes what the plain one does.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    rank: int = Field(gt=0, description="rank of the adapter: lora_a (in, rank), lora_b (rank, out)")
    targets: list[str] | None = Field(
        default=None, description="on a block: names or dotted paths of the Linear layers to wrap; default all"
    )


def _wrap(linear: nnx.Linear, rank: int, rngs: nnx.Rngs) -> nnx.LoRA:
    return nnx.LoRA(linear.in_features, rank, linear.out_features, base_module=linear,
                    param_dtype=linear.param_dtype, rngs=rngs)


def apply_lora(module: Any, option: LoRAOption, rngs: nnx.Rngs, what: str) -> Any:
    """Returns ``module`` with its Linear layers wrapped; raises ``ValueError`` if there are none."""
    from ..errors import did_you_mean

    if isinstance(module, nnx.Linear):
        if option.targets:
            raise ValueError(f"lora targets apply to block uses; {what} is itself the Linear layer to wrap")
        return _wrap(module, option.rank, rngs)
    linears = {
        ".".join(str(p) for p in path): path
        for path, node in nnx.iter_graph(module)
        if path and isinstance(node, nnx.Linear)
    }
    if not linears:
        raise ValueError(f"lora: {what} has no Linear layer to wrap (lora applies to Linear steps and blocks holding them)")
    chosen = list(linears)
    if option.targets is not None:
        unknown = [t for t in option.targets if t not in linears and not any(k.split(".")[-1] == t for k in linears)]
        if unknown:
            raise ValueError(
                f"lora target '{unknown[0]}' is not a Linear layer of {what}{did_you_mean(unknown[0], linears)}; "
                f"its Linear layers: {', '.join(linears)}"
            )
        chosen = [k for k in linears if k in option.targets or k.split(".")[-1] in option.targets]
    for key in chosen:
        path = linears[key]
        parent: Any = module
        for p in path[:-1]:
            parent = parent[p] if isinstance(p, int) else getattr(parent, p)
        last = path[-1]
        child = parent[last] if isinstance(last, int) else getattr(parent, last)
        wrapped = _wrap(child, option.rank, rngs)
        if isinstance(last, int):
            parent[last] = wrapped
        else:
            setattr(parent, last, wrapped)
    return module
