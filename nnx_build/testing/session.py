"""What the cases of one spec file share: program, abstract report, built models.

The cases themselves are read by :mod:`~nnx_build.testing.cases`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import Location, SpecError
from ..text import first_line
from .cases import locator, spec_cases
from .checks import run_case
from .discovery import display_path
from .results import LOAD, CaseResult, SpecCase, SpecTestFailure

__all__ = ["SpecSession", "load_session"]


def load_session(path: str | os.PathLike[str], options: Any = None) -> tuple[SpecSession | None, list[SpecCase]]:
    """The session of a spec file and its cases; a file that does not load gives one failing case.

    Never raises for the file's content, so one broken spec does not stop a run.
    """
    from ..errors import SpecErrors

    path = Path(path)
    try:
        session = SpecSession(path, options=options)
        return session, session.cases()
    except SpecErrors as e:
        problems = list(e.errors)
    except Exception as e:  # noqa: BLE001  (unreadable file, unexpected loader error: still one located failure)
        problems = [SpecError("bad-value", first_line(e, with_type=True), Location(display_path(path)))]
    return None, [SpecCase(path, 0, None, Location(display_path(path)), label=LOAD, problems=problems)]


# ---- the session of one spec file ---------------------------------------------------------------


class SpecSession:
    """The spec file, its program, abstract report and built models, shared by its cases.

    Raises (on construction):
      SpecErrors: the spec does not load or validate (every problem, located).
    """

    def __init__(self, path: str | os.PathLike[str], *, options: Any = None):
        from .. import pipeline

        self.path = Path(path)
        self.options = options or pipeline.Options()
        self.spec = pipeline.load(self.path, self.options)
        self._program: Any = None
        self._report: Any = None
        self._models: dict[int, Any] = {}
        self._jit: dict[str | None, Any] = {}

    def locate(self, *path: Any) -> Location:
        return locator(self.spec)(tuple(path)) if self.spec._document is not None else Location(display_path(self.path))

    def cases(self) -> list[SpecCase]:
        return spec_cases(self.spec, self.path)

    @property
    def program(self) -> Any:
        if self._program is None:
            from .. import pipeline

            self._program = pipeline.compile(self.spec, self.options)
        return self._program

    @property
    def report(self) -> Any:
        if self._report is None:
            from .. import pipeline

            self._report = pipeline.check(self.program, self.options)
        return self._report

    def model(self, seed: int) -> Any:
        """The model built with ``seed`` (built once per session)."""
        if seed not in self._models:
            self._models[seed] = self.fresh_model(seed)
        return self._models[seed]

    def fresh_model(self, seed: int) -> Any:
        from flax import nnx

        from .. import pipeline

        report = self.report  # shape problems surface as located errors first
        model = pipeline.allocate(self.program, self.options, nbytes=report.total_bytes, rngs=nnx.Rngs(seed))
        return pipeline.load_weights(model, self.options, self.program)  # --weights not already filled by allocate (a mesh)

    def jitted(self, method: str | None) -> Any:
        """``f(model, inputs)``: the entry point under ``nnx.jit`` (one compile, not one per op)."""
        if method not in self._jit:
            from flax import nnx

            def call(model: Any, inputs: dict[str, Any]) -> Any:
                fn = model if method is None else getattr(model, method)
                return fn(**inputs)

            self._jit[method] = nnx.jit(call)
        return self._jit[method]

    def release(self) -> None:
        """Drops built models and compiled functions (memory) once the file's cases have run."""
        self._models.clear()
        self._jit.clear()

    def run(self, sc: SpecCase, *, update_goldens: bool = False) -> CaseResult:
        """Runs one case; never raises for a failing check (see ``CaseResult.failures``)."""
        return run_case(self, sc, update_goldens=update_goldens)

    def check(self, sc: SpecCase, *, update_goldens: bool = False) -> CaseResult:
        """Runs one case and raises :class:`SpecTestFailure` if it failed."""
        result = self.run(sc, update_goldens=update_goldens)
        if result.failures:
            raise SpecTestFailure(sc, result.failures)
        return result
