"""What running spec test cases gives: cases, located failures, results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Location, NnxBuildError, SpecError
from ..schemas.tests import TestCase
from .discovery import display_path

__all__ = ["LOAD", "CaseResult", "Failure", "SpecCase", "SpecTestFailure"]

#: the name of the one case a spec file that does not load gives (case names cannot start with '<')
LOAD = "<spec>"


# ---- results --------------------------------------------------------------------------------


@dataclass
class Failure:
    """One check that did not hold: where in the spec, which check, what differed."""

    check: str
    loc: Location
    lines: list[str]
    #: a :data:`~nnx_build.errors.LIMIT_CODES` code when a limit or budget refused the spec
    limit: str | None = None

    def render(self) -> str:
        head, *rest = self.lines or [""]
        return "\n".join([f"{self.loc}: [{self.check}] {head}", *(f"    {line}" for line in rest)])


class SpecTestFailure(NnxBuildError):
    """A spec test case failed; ``str()`` names the file, the case's line and what differed."""

    exit_code = 1

    def __init__(self, case: SpecCase, failures: list[Failure]):
        self.case = case
        self.failures = failures
        super().__init__(self.render())

    def render(self) -> str:
        n = len(self.failures)
        head = f"{self.case.loc}: spec test '{self.case.name}' failed ({n} check{'s' if n != 1 else ''})"
        if self.case.label == LOAD:
            head = f"{display_path(self.case.path)}: the spec does not load"
        elif self.case.case is None:
            head = f"{self.case.loc}: spec test '{self.case.name}' does not validate"
        return "\n".join([head, *(f.render() for f in self.failures)])


@dataclass
class SpecCase:
    """A case of a spec file: its index in ``tests:``, model and location.

    ``case`` is ``None`` when the case does not validate; ``problems`` then says why.
    """

    path: Path
    index: int
    case: TestCase | None
    loc: Location
    label: str = ""
    problems: list[SpecError] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.case.name if self.case is not None else self.label

    @property
    def id(self) -> str:
        return f"{display_path(self.path)}::{self.name}"

    @property
    def checks(self) -> list[str]:
        return self.case.checks if self.case is not None else []


@dataclass
class CaseResult:
    """What running a case gave: ``passed``, ``failed`` or ``error``, checks run, notes, seconds."""

    case: SpecCase
    status: str
    checks: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def error(self) -> SpecTestFailure | None:
        return SpecTestFailure(self.case, self.failures) if self.failures else None
