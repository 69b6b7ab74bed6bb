"""The cases of one spec file and what they share: program, abstract report, built models.

:func:`spec_cases` reads a spec's ``tests:`` section case by case: a case that does
not validate (a schema error, an expression that does not evaluate, a name used twice)
becomes a :class:`SpecCase` holding its located problems, which fails when run, while
the other cases run as usual. :func:`validate_tests` reports every such problem, and
what can be checked against the compiled program without running anything, for
``nnx-build check``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import Location, NnxBuildError, SpecError
from ..schemas.tests import TestCase
from .checks import run_case
from .discovery import display_path
from .results import LOAD, CaseResult, SpecCase, SpecTestFailure

__all__ = [
    "SpecSession",
    "load_session",
    "spec_cases",
    "validate_tests",
]


# ---- reading the tests: section case by case ----------------------------------------------------


def _locator(spec: Any) -> Any:
    doc = spec._document
    if doc is None:
        return lambda path: Location("<spec>")

    def locate(path: tuple[Any, ...]) -> Location:
        loc = doc.locate(tuple(path))
        return Location(display_path(loc.file), loc.line, loc.col)

    return locate


def _expr_errors(raw: Any, args: dict[str, Any], path: tuple[Any, ...], locate: Any) -> list[SpecError]:
    from ..expr import ExprError, evaluate

    if isinstance(raw, str) and "${" in raw:
        try:
            evaluate(raw, args)
        except ExprError as e:
            return [SpecError("bad-expression", f"{e}; tests: expressions see the spec's args", locate(path), path)]
        return []
    items = raw.items() if isinstance(raw, dict) else enumerate(raw) if isinstance(raw, list) else ()
    return [err for k, v in items for err in _expr_errors(v, args, (*path, k), locate)]


def _case_problems(raw: Any, index: int, args: dict[str, Any], locate: Any) -> tuple[TestCase | None, list[SpecError]]:
    from pydantic import ValidationError

    from ..expr import ExprError, substitute
    from ..validation import pydantic_errors

    base = ("tests", index)
    errors = _expr_errors(raw, args, base, locate)
    if errors:
        return None, errors
    try:
        data = substitute(raw, args)
        return TestCase.model_validate(data), []
    except ExprError as e:  # not reached: _expr_errors found each one
        return None, [SpecError("bad-expression", str(e), locate(base), base)]
    except ValidationError as e:
        return None, pydantic_errors(e, base, locate, TestCase, data) or [SpecError("bad-value", str(e), locate(base), base)]


def spec_cases(spec: Any, path: str | os.PathLike[str] | None = None) -> list[SpecCase]:
    """The cases of ``spec``'s ``tests:`` section, broken ones included (with their problems).

    ``${...}`` in a case is evaluated over the spec's ``args``. Without the source
    document (a spec made in Python) the cases are the spec's validated ones.
    """
    locate = _locator(spec)
    doc = spec._document
    file = Path(path) if path is not None else Path(doc.file if doc is not None else "<spec>")
    raw = doc.data.get("tests") if doc is not None and isinstance(doc.data, dict) else None
    if not isinstance(raw, list):
        return [SpecCase(file, i, c, locate(("tests", i))) for i, c in enumerate(spec.tests or [])]
    out: list[SpecCase] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = ("tests", i)
        case, problems = _case_problems(item, i, dict(spec.args), locate)
        if case is not None and case.name in seen:
            problems = [SpecError("bad-value", f"two test cases are named '{case.name}'; case names must be unique within a spec",
                                  locate((*where, "name")), (*where, "name"))]
        if case is not None and not problems:
            seen.add(case.name)
            out.append(SpecCase(file, i, case, locate(where)))
            continue
        out.append(SpecCase(file, i, None, locate(where), label=f"tests[{i}]", problems=problems))
    return out


def _static_problems(program: Any, sc: SpecCase, spec_dir: Path | None, locate: Any) -> list[SpecError]:
    """What a valid case asks of the model that the model does not have (no run needed)."""
    from ..errors import did_you_mean

    c = sc.case
    assert c is not None
    base = ("tests", sc.index)
    out: list[SpecError] = []

    def err(code: str, message: str, *keys: Any) -> None:
        out.append(SpecError(code, message, locate((*base, *keys)), (*base, *keys)))

    graph = program.root.main
    if c.method is not None:
        methods = dict(program.root.methods)
        if c.method not in methods:
            names = ", ".join(methods) or "none"
            err("unknown-name", f"the model has no method '{c.method}'{did_you_mean(c.method, methods)}; its methods: {names}", "method")
            return out
        graph = methods[c.method]
    specs = dict(graph.input_specs)
    for name, given in c.inputs.items():
        if name not in graph.inputs:
            err("unknown-name", f"input '{name}' is not an input of the model{did_you_mean(name, graph.inputs)}; its inputs: {', '.join(graph.inputs)}", "inputs", name)
        elif name in specs and len(given.shape) != len(specs[name].shape):
            declared = list(specs[name].shape)
            err("bad-shape", f"input '{name}' is declared with {len(declared)} dims {declared}, the case gives {len(given.shape)}: {given.shape}", "inputs", name)
    outputs = list(graph.outputs)
    for name in c.outputs or {}:
        if name not in outputs:
            err("unknown-name", f"no output '{name}'{did_you_mean(name, outputs)}; the outputs are: {', '.join(outputs)}", "outputs", name)
    if c.train_step is not None and c.train_step.output is not None and c.train_step.output not in outputs:
        which = c.train_step.output
        err("unknown-name", f"no output '{which}'{did_you_mean(which, outputs)}; the outputs are: {', '.join(outputs)}", "train_step", "output")
    if c.inputs_file is not None and spec_dir is not None:
        p = Path(c.inputs_file)
        if not (p if p.is_absolute() else spec_dir / p).is_file():
            err("missing-file", f"inputs file {c.inputs_file} does not exist (paths are relative to the spec file)", "inputs_file")
    return out


def validate_tests(spec: Any, program: Any = None) -> list[SpecError]:
    """Every problem of ``spec``'s ``tests:`` section, found without running a case.

    Schema errors, expressions that do not evaluate, names used twice, and what a case
    asks of the model that it does not have: an unknown method, input or output, an
    input of the wrong rank, a missing ``inputs_file``. ``program`` is the compiled
    spec (compiled here when not given; a spec that does not compile gives only the
    section's own problems).
    """
    cases = spec_cases(spec)
    errors = [p for sc in cases for p in sc.problems]
    if program is None:
        try:
            from ..builder.program import compile_spec
            from ..spec_io import spec_locator

            program = compile_spec(spec, spec_locator(spec))
        except NnxBuildError:
            return errors
    doc = spec._document
    spec_dir = Path(doc.file).parent if doc is not None and Path(doc.file).is_file() else None
    locate = _locator(spec)
    for sc in cases:
        if sc.case is not None:
            errors += _static_problems(program, sc, spec_dir, locate)
    return errors


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
        text = str(e).strip().splitlines()
        problems = [SpecError("bad-value", f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": "), Location(display_path(path)))]
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
        return _locator(self.spec)(tuple(path)) if self.spec._document is not None else Location(display_path(self.path))

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
        return pipeline.allocate(self.program, self.options, nbytes=report.total_bytes, rngs=nnx.Rngs(seed))

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
