"""The spec document as pydantic models.

A spec has inputs, a list of steps (``layers``), outputs, and optionally args, blocks,
methods, declared variables and kinds. Step fields that belong to a layer or op are
validated against that layer's own model once expressions are evaluated (see
:mod:`nnx_build.builder.compiler`); here a step is its common fields plus extras.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from .common import DTypeName, Init
from .tests import TestCases
from .train import TrainSpec
from .weights import WeightsMapping

__all__ = [
    "ArgSpec",
    "BlockSpec",
    "FORMAT_VERSION",
    "InputSpec",
    "KindSpec",
    "MeshSpec",
    "MethodSpec",
    "Spec",
    "Step",
    "VariableSpec",
]

FORMAT_VERSION = 1
#: a logical or mesh axis name
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_VAR_PATH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*(\.[A-Za-z0-9][A-Za-z0-9_]*)*$")

Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]
#: a dimension: an integer, a symbolic name (``batch``) or an expression (``${d * 4}``)
Dim = Annotated[int | str, Field(description="integer size, symbolic name, or ${expression}")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


class InputSpec(_Model):
    """A model input: its shape (named dims are symbolic) and dtype.

    ``x: [batch, 2]`` is short for ``x: {shape: [batch, 2]}`` (dtype float32); write the
    mapping for another dtype: ``ids: {shape: [batch, seq], dtype: int32}``.
    """

    shape: list[Dim] = Field(description="sizes; a name such as batch is a symbolic (polymorphic) dim")
    dtype: DTypeName = "float32"

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `x: [batch, 2]` is short for `x: {shape: [batch, 2]}`
        return {"shape": data} if isinstance(data, list) else data


class VariableSpec(_Model):
    """A raw variable declared by a block or the model, used by ops as a value."""

    kind: str = Field(default="Param", description="Param, BatchStat, Cache, Intermediate or a declared kind")
    shape: list[Dim] = Field(description="integer sizes or ${expressions}")
    init: Init = "zeros"
    dtype: DTypeName | None = Field(default=None, description="default float32")
    sharding: list[str | None] | None = Field(
        default=None, description="logical axis names, one per dimension (nnx.with_partitioning)"
    )


class KindSpec(_Model):
    """A variable kind declared by the spec, created as a real nnx.Variable subclass."""

    base: str = Field(default="Param", description="the kind it specialises (Param, BatchStat, ... or another declared kind)")
    doc: str = ""


class ArgSpec(_Model):
    """A typed argument of a block."""

    type: Literal["int", "float", "bool", "str", "list", "any"] = "any"
    default: Any = None
    required: bool = True
    doc: str = ""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):  # `dim: int`
            return {"type": data}
        if isinstance(data, dict) and "default" in data:
            return {**data, "required": False}
        return data


class Step(BaseModel):
    """One step of a graph.

    Written as ``- relu``, ``- {type: reshape, shape: [-1]}`` or, named,
    ``- linear: {type: Linear, in_features: 2, out_features: 64}``. Layer fields other
    than the ones below are kept as extras and validated against the layer's own model.

    An unnamed step's output is named ``_{type}_{i}``, ``i`` the step's position in its
    ``layers:`` list counting from 0 (a method's steps continue the count after the
    model's steps and earlier methods'): in ``layers: [fc: {...}, relu]`` the ``relu``
    output is ``_relu_1``. Use ``as:`` to give it a name of your own.

    With ``repeat: N`` the copies run in sequence: each copy's outputs are the next
    copy's first inputs, and the inputs after those (a block with ``inputs: [h, mask]``
    and one output carries ``h`` and gives the same ``mask`` to every copy) are passed
    unchanged to every copy, with or without ``scan: true``. ``repeat: 0`` runs no
    copy: the step's first input(s) pass through (a stage of one block writes
    ``repeat: ${n - 1}`` after its first block).
    """

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True, strict=True)

    name: Name | None = Field(default=None, description="the module attribute (layers, blocks) and the output's name")
    type: str = Field(description="a layer or op of the catalogue, or a block declared under blocks:")
    in_: str | list[str] | dict[str, str] | None = Field(
        default=None, alias="in", description="inputs: a value name, a list (positional) or a mapping (keyword); default the previous step"
    )
    as_: Name | list[Name] | None = Field(default=None, alias="as", description="name(s) of the output; a list unpacks a tuple")
    repeat: int | str | None = Field(
        default=None,
        description="apply N copies in sequence (each with its own weights); inputs past the block's outputs "
        "(a mask) go to every copy; 0: none, the input passes through",
    )
    scan: bool = Field(default=False, description="with repeat: stack the copies (nnx.vmap) and run them with nnx.scan")
    kinds: dict[str, str] = Field(default_factory=dict, description="variable name -> kind, e.g. {kernel: Frozen}")
    sharding: dict[str, list[str | None]] = Field(
        default_factory=dict, description="variable name -> logical axis names (nnx.with_partitioning)"
    )
    doc: str = ""

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"type": data}
        if isinstance(data, dict) and "type" not in data and len(data) == 1:
            (name, body), = data.items()
            if isinstance(body, dict):
                return {"name": name, **body}
            if isinstance(body, str):  # `- h: relu`
                return {"name": name, "type": body}
        return data

    @field_validator("kinds", "sharding")
    @classmethod
    def _variable_paths(cls, v: dict[str, Any]) -> dict[str, Any]:
        # keys are paths to the layer's variables ('kernel', 'layers.0.kernel'): nothing private
        for key in v:
            if not _VAR_PATH.match(key):
                raise ValueError(
                    f"'{key}' is not a variable path such as 'kernel' or 'layers.0.kernel' "
                    "(names separated by dots, none starting with '_')"
                )
        return v

    @property
    def fields(self) -> dict[str, Any]:
        """The layer's own fields (everything not common to all steps)."""
        return dict(self.__pydantic_extra__ or {})

    def inputs(self) -> tuple[tuple[str, ...], dict[str, str]]:
        if self.in_ is None:
            return (), {}
        if isinstance(self.in_, str):
            return (self.in_,), {}
        if isinstance(self.in_, list):
            return tuple(self.in_), {}
        return (), dict(self.in_)


class MethodSpec(_Model):
    """An extra entry point: ``model.encode(x)``.

    ``inputs`` defaults to the model's inputs; ``layers`` may add steps (for instance a
    ``call`` of an existing module); ``outputs`` name values of the model's graph or of
    these steps.
    """

    inputs: dict[str, InputSpec] | list[Name] | None = Field(default=None, description="default: the model's inputs")
    layers: list[Step] = Field(default_factory=list, description="extra steps of this method")
    outputs: list[Name] = Field(description="values returned, in order")
    doc: str = ""


class BlockSpec(_Model):
    """A reusable, parameterised sub-spec; each use is a nested ``nnx.Module``."""

    args: dict[Name, ArgSpec] = Field(default_factory=dict, description="typed arguments, usable as ${name}")
    inputs: list[Name] = Field(default_factory=lambda: ["x"], description="names of the block's inputs")
    variables: dict[Name, VariableSpec] = Field(default_factory=dict, description="raw variables, usable as values")
    layers: list[Step] = Field(description="the block's steps")
    outputs: list[Name] | None = Field(default=None, description="default: the last step's output")
    methods: dict[Name, MethodSpec] = Field(default_factory=dict)
    doc: str = ""


class MeshSpec(_Model):
    """A device mesh and the rules mapping logical axis names onto its axes.

    ``axes`` gives each mesh axis its size, in order; one size may be ``-1``: the devices
    left over by the others. ``rules`` map the logical axis names of ``sharding:``
    annotations onto mesh axes: ``[embed, fsdp]``, ``[batch, [data, fsdp]]`` (several
    mesh axes), ``[kv, null]`` (replicated). For each dimension of a variable the first
    rule naming its logical axis that maps to mesh axes present in the mesh (those it
    lacks are left out) and not yet used by another dimension of that variable applies;
    otherwise the dimension is replicated::

        mesh:
          axes: {data: 1, fsdp: -1, tensor: 1}
          rules: [[batch, [data, fsdp]], [embed, fsdp], [mlp, tensor], [kv, null]]
    """

    axes: dict[Name, int] = Field(description="mesh axis name -> size, in order; one size may be -1 (the rest)")
    rules: list[list[str | list[str] | None]] = Field(
        default_factory=list,
        description="[logical axis, mesh axis | [mesh axes] | null] pairs; the first that applies wins",
    )

    @field_validator("axes")
    @classmethod
    def _sizes(cls, v: dict[str, int]) -> dict[str, int]:
        bad = [f"{k}: {n}" for k, n in v.items() if n < 1 and n != -1]
        if bad:
            raise ValueError(f"mesh axis sizes are positive integers or -1 (the rest), received {', '.join(bad)}")
        if sum(n == -1 for n in v.values()) > 1:
            raise ValueError("at most one mesh axis may have size -1 (the devices left over by the others)")
        return v

    @field_validator("rules")
    @classmethod
    def _rules(cls, v: list[list[Any]]) -> list[list[Any]]:
        for i, rule in enumerate(v):
            if len(rule) != 2 or not isinstance(rule[0], str) or not _IDENT.match(rule[0]):
                raise ValueError(
                    f"rule {i} must be a pair [logical axis, mesh axis | [mesh axes] | null] such as [embed, fsdp], "
                    f"received {rule!r}"
                )
            target = rule[1]
            names = target if isinstance(target, list) else [] if target is None else [target]
            if any(not _IDENT.match(n) for n in names):
                raise ValueError(f"rule {i} maps '{rule[0]}' to {target!r}; mesh axes are names such as data or fsdp")
        return v

    @model_validator(mode="after")
    def _rule_axes(self) -> MeshSpec:
        for i, (logical, target) in enumerate(self.rules):
            names = target if isinstance(target, list) else [] if target is None else [target]
            unknown = [n for n in names if n not in self.axes]
            if unknown:
                raise ValueError(
                    f"rule {i} maps '{logical}' to mesh axis '{unknown[0]}', which 'axes' does not declare "
                    f"(axes: {', '.join(self.axes)}); declare it (size 1 leaves it unused) or fix the name"
                )
        return self


class Spec(_Model):
    """A model spec (format 1)."""

    format: int = Field(description="spec format version; this nnx-build reads format 1")
    name: Name = Field(description="model name; the built class is its CamelCase form")
    doc: str = ""
    seed: int = Field(default=0, ge=-(2**63), lt=2**63, description="seed of nnx.Rngs for the weights")
    args: dict[Name, Any] = Field(default_factory=dict, description="values usable as ${name} anywhere")
    dims: dict[Name, int] = Field(
        default_factory=dict, description="example sizes of symbolic dims for forward passes (default 1)"
    )
    dtype: DTypeName | None = Field(default=None, description="default computation dtype of layers")
    param_dtype: DTypeName | None = Field(default=None, description="default parameter dtype of layers")
    kinds: dict[Name, KindSpec] = Field(default_factory=dict, description="variable kinds declared on top of NNX's")
    inputs: dict[Name, InputSpec] = Field(description="model inputs, in call order; x: [batch, 2] is short for x: {shape: [batch, 2]}")
    variables: dict[Name, VariableSpec] = Field(default_factory=dict, description="raw variables of the model")
    blocks: dict[Name, BlockSpec] = Field(default_factory=dict, description="reusable sub-specs, used as step types")
    layers: list[Step] = Field(description="the steps, sequential unless a step says in:")
    outputs: list[Name] | None = Field(default=None, description="values returned by __call__; default the last step's")
    methods: dict[Name, MethodSpec] = Field(default_factory=dict, description="extra entry points: model.NAME(...)")
    mesh: MeshSpec | None = Field(default=None, description="device mesh for sharded builds")
    max_params: int | None = Field(default=None, ge=0, description="refuse to build past this many parameters")
    max_bytes: int | None = Field(
        default=None, ge=0, description="refuse to build past this many bytes of variables and example inputs"
    )
    tests: TestCases | None = Field(default=None, description="spec tests (run by nnx-build test and the pytest plugin)")
    train: TrainSpec | None = Field(default=None, description="training setup (nnx-build train)")
    weights: WeightsMapping | str | None = Field(
        default=None,
        description="how a checkpoint's tensors (--weights) fill the variables, or a YAML file holding that mapping "
        "(docs/pretrained.md: patterns, transforms, errors)",
    )

    _document: Any = PrivateAttr(default=None)

    @field_validator("format")
    @classmethod
    def _format(cls, v: int) -> int:
        if v > FORMAT_VERSION:
            raise ValueError(
                f"spec format {v} is newer than this nnx-build reads (format {FORMAT_VERSION}); upgrade nnx-build"
            )
        if v < 1:
            raise ValueError(f"spec format must be {FORMAT_VERSION}, received {v}")
        return v

    def __eq__(self, other: object) -> bool:  # source positions do not take part
        return isinstance(other, Spec) and self.model_dump(by_alias=True) == other.model_dump(by_alias=True)

    __hash__ = None  # type: ignore[assignment]
