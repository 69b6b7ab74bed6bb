"""Spec tests: the ``tests:`` section of a spec, as pydantic models.

A case is one mapping with a ``name`` and any number of checks; every check it gives
must hold. Each case is run by ``nnx-build test`` and collected by the pytest plugin
as ``path/spec.yaml::name``::

    tests:
      - name: counts                      # abstract: no weight allocated
        params: {Param: 25557032, BatchStat: 53120}
      - name: forward
        inputs: {x: [2, 32, 32, 3]}       # random inputs from data_seed; shapes may differ
        outputs: {fc: {shape: [2, 1000], dtype: float32}}
        deterministic: true               # same seed -> same weights and outputs
      - name: golden
        inputs: {x: [2, 32, 32, 3]}
        golden: {file: goldens/resnet50.npz, rtol: 1.0e-5, atol: 1.0e-5}
      - name: learns
        train_step: {loss: cross_entropy, learning_rate: 0.01}

Paths (``golden.file``, ``inputs_file``) are relative to the spec file. Any field may
be a ``${...}`` expression over the spec's ``args`` (``inputs: {x: [2, ${size}]}``).

A case that does not validate does not stop the spec from loading or building: the
spec keeps its valid cases, and :func:`nnx_build.testing.validate_tests` (run by
``nnx-build check``) and the test runners report the broken one at its line.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from ..expr import ExprError, substitute
from ..training.objectives import LOSSES, names_and_aliases
from .common import DTypeName
from .train import choice, enum_of

__all__ = [
    "ArrayInput",
    "Export",
    "ExportTarget",
    "Golden",
    "OutputExpect",
    "TestCase",
    "TestCases",
    "TrainStep",
    "parse_case",
]

Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]
CaseName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$", max_length=128)]

#: the checks a case may make; a case must make at least one (or give inputs: a smoke run)
CHECKS = ("params", "outputs", "deterministic", "golden", "train_step", "export")


def _losses() -> list[str]:
    # the losses of train_step: every loss of the training table (read when used), and its aliases
    return names_and_aliases(LOSSES)


def _export_targets() -> list[str]:
    # the exporters' table, read when used (it imports no JAX): a plugin's target counts too
    from ..exporters.targets import TARGETS

    return list(TARGETS)


ExportTarget = Annotated[str, choice("export target", _export_targets), enum_of(_export_targets)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ArrayInput(_Model):
    """A random input: its shape, dtype and range (drawn from the case's ``data_seed``)."""

    shape: list[Annotated[int, Field(ge=0)]] = Field(description="concrete sizes")
    dtype: DTypeName | None = Field(default=None, description="default: the spec input's dtype")
    low: float | None = Field(default=None, description="integers: lowest value (default 0); floats: uniform from low to high instead of normal")
    high: float | None = Field(default=None, description="integers: one past the highest value (default 16)")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `x: [2, 8]` is short for `x: {shape: [2, 8]}`
        return {"shape": data} if isinstance(data, list) else data


class OutputExpect(_Model):
    """What an output must be: its shape (``null`` matches any size) and dtype."""

    shape: list[int | None] | None = Field(default=None, description="expected sizes; null matches any size")
    dtype: DTypeName | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"shape": data} if isinstance(data, list) else data


class Golden(_Model):
    """Outputs compared with arrays stored in an ``.npz`` (written by ``nnx-build test --update-goldens``).

    The file holds ``inputs/NAME`` and ``outputs/NAME`` arrays; stored inputs are used
    instead of random ones, so a golden does not depend on how inputs are drawn.
    """

    file: str = Field(description=".npz path, relative to the spec file")
    rtol: float = Field(default=1e-5, ge=0)
    atol: float = Field(default=1e-6, ge=0)


class TrainStep(_Model):
    """One optimiser step on random inputs and targets must lower the loss on the same batch.

    ``loss`` is any loss of the ``train:`` section (or an alias: ``mse``,
    ``cross_entropy``), with the same function as ``nnx-build train``. A loss on integer
    labels (``softmax_cross_entropy_with_integer_labels``) gets labels drawn over the
    last output axis; the others get normal targets of the output's shape. Dropout is
    switched off during the check (BatchNorm still uses batch statistics), so the two
    losses are comparable.
    """

    loss: Annotated[str, choice("loss", _losses), enum_of(_losses)] = "mse"
    optimizer: Literal["sgd", "adam"] = "sgd"
    learning_rate: float = Field(default=1e-2, gt=0)
    steps: int = Field(default=1, ge=1, le=100)
    output: Name | None = Field(default=None, description="which output the loss reads (default the first)")


class Export(_Model):
    """Export to each target, reload the artifacts in a fresh process, run them and compare with JAX."""

    targets: list[ExportTarget] = Field(min_length=1, description="export targets of nnx-build export --to")
    tolerance: float | None = Field(default=None, ge=0, description="abs and rel tolerance (default the exporter's: 1e-5 for float32)")


class TestCase(_Model):
    """One spec test: a name, optional inputs, and the checks that must hold."""

    __test__ = False  # not a pytest class

    name: CaseName = Field(description="the case's id: path/spec.yaml::name")
    doc: str = ""
    slow: bool = Field(default=False, description="marks the pytest item slow (pytest.mark.slow)")
    method: Name | None = Field(default=None, description="entry point to run (default __call__)")
    seed: int | None = Field(default=None, description="weight seed (default the spec's)")
    data_seed: int = Field(default=0, description="seed of the random inputs")
    inputs: dict[Name, ArrayInput] = Field(
        default_factory=dict,
        description="shapes of random inputs, e.g. {x: [2, 32, 32, 3]}; inputs not named take the spec's shape with dims sizes",
    )
    inputs_file: str | None = Field(default=None, description=".npz of input arrays by name, relative to the spec file")
    mode: Literal["eval", "train"] = Field(default="eval", description="module mode of the forward pass")
    params: dict[str, Annotated[int, Field(ge=0)]] | None = Field(
        default=None, description="exact variable counts by kind, e.g. {Param: 1000, BatchStat: 64} (abstract build)"
    )
    outputs: dict[Name, OutputExpect] | None = Field(default=None, description="expected output shapes and dtypes")
    finite: bool = Field(default=True, description="outputs of the forward pass must be finite")
    deterministic: bool = Field(default=False, description="two builds with the same seed give equal weights and outputs")
    golden: Golden | None = None
    train_step: TrainStep | None = None
    export: Export | None = None

    @model_validator(mode="after")
    def _checks_something(self) -> TestCase:
        if not any(getattr(self, c) not in (None, False) for c in CHECKS) and not self.inputs and not self.inputs_file:
            raise ValueError(f"test case '{self.name}' checks nothing: give inputs (a forward run) or one of {', '.join(CHECKS)}")
        return self

    @property
    def runs_forward(self) -> bool:
        """Whether the case needs an eager build and a forward pass."""
        smoke = bool(self.inputs or self.inputs_file) and self.train_step is None and self.export is None
        return bool(self.outputs or self.golden or self.deterministic or smoke)

    @property
    def checks(self) -> list[str]:
        """The names of the checks this case makes, in run order."""
        out = [c for c in CHECKS if getattr(self, c) not in (None, False)]
        if self.runs_forward and "outputs" not in out:
            out.insert(1 if "params" in out else 0, "forward")
        return out


def parse_case(raw: Any, args: dict[str, Any] | None = None) -> TestCase:
    """One raw case of a ``tests:`` list, its ``${...}`` expressions evaluated over ``args``.

    Raises:
      ExprError: an expression does not evaluate.
      ValidationError: the case does not validate.
    """
    return TestCase.model_validate(substitute(raw, dict(args or {})))


def _valid_cases(value: Any, info: ValidationInfo) -> Any:
    """Keeps the cases that validate (first of each name); the others are reported by validate_tests."""
    if not isinstance(value, list):
        return value  # not a list: the section itself is wrong, a located error
    args = info.data.get("args") if isinstance(info.data, dict) else None
    out: list[TestCase] = []
    names: set[str] = set()
    for raw in value:
        try:
            case = parse_case(raw, args if isinstance(args, dict) else {})
        except (ExprError, ValidationError, ValueError, TypeError, ArithmeticError):
            continue
        if case.name not in names:
            names.add(case.name)
            out.append(case)
    return out


TestCases = Annotated[list[TestCase], BeforeValidator(_valid_cases)]
