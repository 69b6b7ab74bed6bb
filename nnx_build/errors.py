"""Errors are data: one base class, a stable ``code`` and a source location.

Every problem in a spec is a :class:`SpecError`; a run that finds several raises a
:class:`SpecErrors` holding all of them, so a user fixes a spec in one pass.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "LIMIT_CODES",
    "Location",
    "NnxBuildError",
    "OutOfMemoryError",
    "SpecError",
    "SpecErrors",
    "did_you_mean",
    "limit_code",
]

#: the codes of a spec refused by a limit or budget, not for being wrong: the document's
#: limits (``--limit``), the parameter and byte budgets, and the memory of the machine
LIMIT_CODES = frozenset({
    "file-too-large", "too-many-nodes", "too-deep", "too-long-string", "too-many-modules",
    "too-many-params", "too-many-bytes", "out-of-memory",
})


@dataclass(frozen=True)
class Location:
    """A place in a spec file: 1-based line and column."""

    file: str = "<spec>"
    line: int = 1
    col: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class NnxBuildError(Exception):
    """Base of every error nnx-build raises on purpose (CLI exit code 2)."""

    exit_code = 2


class OutOfMemoryError(NnxBuildError):
    """The machine could not allocate what a spec within its budgets asks for."""


@dataclass
class SpecError(NnxBuildError):
    """One problem in a spec.

    Attributes:
      code: stable, kebab-case identifier (``unknown-type``, ``shape-mismatch``, ...).
      message: what was expected, what was received, and the fix.
      loc: where in the spec file.
      path: the path of keys and indices inside the spec document.
    """

    code: str
    message: str
    loc: Location = field(default_factory=Location)
    path: tuple[str | int, ...] = ()

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.loc}: error[{self.code}]: {self.message}"

    def __hash__(self) -> int:
        return hash((self.code, self.message, self.loc))


class SpecErrors(NnxBuildError):
    """Several spec problems found in one run, in file order."""

    def __init__(self, errors: Iterable[SpecError]):
        unique: dict[SpecError, None] = dict.fromkeys(errors)
        self.errors: list[SpecError] = sorted(
            unique, key=lambda e: (e.loc.file, e.loc.line, e.loc.col, e.code)
        )
        super().__init__("\n".join(str(e) for e in self.errors))

    @property
    def codes(self) -> list[str]:
        return [e.code for e in self.errors]


def did_you_mean(name: str, choices: Sequence[str] | Iterable[str]) -> str:
    """Returns `` (did you mean 'x'?)`` for the closest choice, or ``""``."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    if name.lower() in lowered:
        return f" (did you mean '{lowered[name.lower()]}'?)"
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
        close = [lowered[c] for c in close]
    return f" (did you mean '{close[0]}'?)" if close else ""


def limit_code(exc: BaseException) -> str | None:
    """The :data:`LIMIT_CODES` code ``exc`` refuses a spec with, or None (a spec at fault, a bug)."""
    if isinstance(exc, OutOfMemoryError):
        return "out-of-memory"
    codes = exc.codes if isinstance(exc, SpecErrors) else [exc.code] if isinstance(exc, SpecError) else []
    return next((c for c in codes if c in LIMIT_CODES), None)
