"""The ``weights:`` section: how a checkpoint's tensors fill a model's variables.

Written in the spec or in a YAML file the spec names (``weights: hf_bert_weights.yaml``,
relative to the spec)::

    weights:
      ignore: [embeddings.position_ids]
      map:
        embeddings.word_embeddings.weight: word/embedding
        encoder.layer.{i}.attention.self.query.weight:
          to: encoder/{i}/attn/query/kernel
          transforms: [transpose, reshape]

Keys of ``map`` are checkpoint names with captures (``{i}`` matches one name part: no
``.`` or ``/``); values are variable paths (the ``/``-joined keys of
``nnx_build.save_weights``), where ``{i}`` is put back. A path through a ``repeat: N``
step names copy ``i`` (``encoder/{i}/...``); with ``scan: true`` the tensors of all
copies are stacked into the variable's leading axis. See :mod:`nnx_build.weights.mapping`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["WeightRule", "WeightsMapping"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


class WeightRule(_Model):
    """Where one checkpoint tensor (pattern) goes, and how it is changed on the way.

    ``transforms`` apply in order to the checkpoint's tensor: ``transpose`` (reverse the
    axes; ``{transpose: [1, 0, 2]}`` a permutation), ``oihw_to_hwio`` (a torch conv
    kernel ``[out, in, *spatial]`` to ``[*spatial, in, out]``), ``reshape`` (to the
    variable's shape; ``{reshape: [12, 32, -1]}`` an explicit one), ``{cast: float32}``.
    With ``to:`` a list, the tensor is first split into that many equal parts along axis
    ``split`` (a fused qkv projection), part ``k`` going to the ``k``-th path.
    """

    to: str | list[str] = Field(description="variable path (with the pattern's captures); a list: split into parts")
    split: int | None = Field(default=None, description="with to: a list, the axis the tensor is split along")
    transforms: list[str | dict[str, Any]] = Field(
        default_factory=list,
        description="in order: transpose, oihw_to_hwio, reshape, {transpose: [perm]}, {reshape: [dims]}, {cast: dtype}",
    )
    doc: str = ""


class WeightsMapping(_Model):
    """Checkpoint names to variable paths: every variable filled once, every tensor used or ignored."""

    doc: str = ""
    ignore: list[str] = Field(default_factory=list, description="checkpoint name patterns that are not weights (buffers)")
    map: dict[str, str | WeightRule] = Field(
        description="checkpoint name pattern ({i} captures one name part) -> variable path, or a rule with transforms"
    )
