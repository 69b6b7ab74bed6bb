"""One run over spec files: select cases with ``-k``, run them, count, decide the exit code.

``nnx-build test`` is this loop with a printer; the pytest plugin lets pytest drive
the loop but loads files (:func:`~nnx_build.testing.session.load_session`) and runs
cases (:meth:`SpecSession.run`) the same way.

Example:
  >>> summary = run(discover(["specs"]), keyword="counts")      # doctest: +SKIP
  >>> summary.exit_code, summary.text                           # doctest: +SKIP
  (0, '9 passed, 40 deselected')
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checks import run_case
from .discovery import keyword_matcher
from .results import LOAD, CaseResult, SpecCase
from .session import load_session

__all__ = ["EXIT_FAILED", "EXIT_NO_TESTS", "EXIT_OK", "EXIT_USAGE", "Summary", "run"]

EXIT_OK = 0
#: a case failed, or a spec or one of its cases does not load
EXIT_FAILED = 1
#: bad usage (a missing path, a bad -k expression), or a spec refused by a limit or budget
#: (``--limit``, ``--max-params``, ``--max-bytes``, out of memory), as every command exits
EXIT_USAGE = 2
#: no case ran: no spec with tests found, or -k matched nothing (pytest's "no tests ran")
EXIT_NO_TESTS = 5


@dataclass
class Summary:
    """What a run found and gave."""

    files: list[Path]
    keyword: str | None = None
    collected: int = 0
    selected: list[SpecCase] = field(default_factory=list)
    results: list[CaseResult] = field(default_factory=list)
    deselected: int = 0
    seconds: float = 0.0
    collect_only: bool = False

    @property
    def counts(self) -> dict[str, int]:
        out = {"passed": 0, "failed": 0, "error": 0}
        for r in self.results:
            out[r.status] += 1
        out["deselected"] = self.deselected
        return out

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if r.status != "passed"]

    @property
    def refused(self) -> list[CaseResult]:
        """The cases a limit or budget refused to build (see :data:`nnx_build.errors.LIMIT_CODES`)."""
        return [r for r in self.results if any(f.limit for f in r.failures)]

    @property
    def exit_code(self) -> int:
        if self.refused:
            return EXIT_USAGE
        if self.failed:
            return EXIT_FAILED
        return EXIT_OK if self.selected else EXIT_NO_TESTS

    @property
    def nothing_ran(self) -> str:
        """Why no case ran ('' when some did)."""
        if self.selected:
            return ""
        if not self.files:
            return "no spec files with a tests: section found"
        if self.collected and self.keyword:
            n = len(self.files)
            return f"-k {self.keyword!r} matched none of the {self.collected} case(s) in {n} spec file{'s' if n != 1 else ''}"
        return "the spec files found have no test cases"

    @property
    def text(self) -> str:
        """``3 passed, 1 failed, 2 deselected``, or why nothing ran."""
        if self.collect_only:
            return f"{len(self.selected)} case(s) in {len(self.files)} spec file(s)" if self.selected else self.nothing_ran
        if not self.selected:
            return self.nothing_ran
        return ", ".join(f"{n} {k}" for k, n in self.counts.items() if n)


def run(
    files: Sequence[str | Path],
    *,
    keyword: str | None = None,
    update_goldens: bool = False,
    exitfirst: bool = False,
    collect_only: bool = False,
    on_file: Callable[[Path, list[SpecCase]], None] | None = None,
    on_result: Callable[[CaseResult], None] | None = None,
    on_file_done: Callable[[Path], None] | None = None,
    around_case: Callable[[SpecCase], AbstractContextManager[object]] | None = None,
    options: Any = None,
) -> Summary:
    """Runs the cases of ``files`` whose id ``path::case`` matches ``keyword``.

    A spec that does not load counts as one error (whatever ``keyword`` says) and a
    case that does not validate as an error; the other cases still run. The
    callbacks let a caller print as the run goes: ``on_file`` with the selected cases
    of a file, ``on_result`` after each case, ``on_file_done`` after a file.
    ``options`` (a :class:`nnx_build.pipeline.Options`) sets limits, budgets and plugins.

    Raises:
      ValueError: ``keyword`` does not parse.
    """
    matches = keyword_matcher(keyword)
    t0 = time.perf_counter()
    summary = Summary([Path(f) for f in files], keyword=keyword, collect_only=collect_only)
    for path in summary.files:
        session, cases = load_session(path, options)
        summary.collected += sum(1 for c in cases if c.label != LOAD)
        selected = [c for c in cases if c.label == LOAD or matches(c.id)]
        summary.deselected += len(cases) - len(selected)
        summary.selected += selected
        if not selected:
            continue
        if on_file is not None:
            on_file(path, selected)
        stop = False
        if not collect_only:
            for sc in selected:
                with around_case(sc) if around_case is not None else nullcontext():
                    result = session.run(sc, update_goldens=update_goldens) if session is not None else _unloaded(sc)
                summary.results.append(result)
                if on_result is not None:
                    on_result(result)
                if result.status != "passed" and exitfirst:
                    stop = True
                    break
        if session is not None:
            session.release()
        if on_file_done is not None:
            on_file_done(path)
        if stop:
            break
    summary.seconds = time.perf_counter() - t0
    return summary


def _unloaded(sc: SpecCase) -> CaseResult:
    return run_case(None, sc)  # the spec's one case: it fails with the load errors
