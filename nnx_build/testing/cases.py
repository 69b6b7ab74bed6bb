"""The cases of a spec's ``tests:`` section, read one by one, and their validation.

:func:`spec_cases` reads a spec's ``tests:`` section case by case: a case that does
not validate (a schema error, an expression that does not evaluate, a name used twice)
becomes a :class:`SpecCase` holding its located problems, which fails when run, while
the other cases run as usual. :func:`validate_tests` reports every such problem, and
what can be checked against the compiled program without running anything, for
``nnx-build check``. Nothing here builds or runs a model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import Location, NnxBuildError, SpecError
from ..schemas.tests import TestCase
from .discovery import display_path
from .results import SpecCase

__all__ = ["locator", "spec_cases", "validate_tests"]


def locator(spec: Any) -> Any:
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
    locate = locator(spec)
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
            err(
                "unknown-name",
                f"input '{name}' is not an input of the model{did_you_mean(name, graph.inputs)}; "
                f"its inputs: {', '.join(graph.inputs)}",
                "inputs",
                name,
            )
        elif name in specs and len(given.shape) != len(specs[name].shape):
            declared = list(specs[name].shape)
            err(
                "bad-shape",
                f"input '{name}' is declared with {len(declared)} dims {declared}, "
                f"the case gives {len(given.shape)}: {given.shape}",
                "inputs",
                name,
            )
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
            from ..builder.compiler import compile_spec
            from ..spec_io import spec_locator

            program = compile_spec(spec, spec_locator(spec))
        except NnxBuildError:
            return errors
    doc = spec._document
    spec_dir = Path(doc.file).parent if doc is not None and Path(doc.file).is_file() else None
    locate = locator(spec)
    for sc in cases:
        if sc.case is not None:
            errors += _static_problems(program, sc, spec_dir, locate)
    return errors
