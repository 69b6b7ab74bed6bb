"""Spec tests: the ``tests:`` section of a spec, run by ``nnx-build test`` and by pytest.

:mod:`nnx_build.testing.runner` runs the cases of one spec file, sharing the compiled
program, the abstract report and built models between them;
:mod:`nnx_build.testing.plugin` is the pytest plugin (entry point ``pytest11``) that
collects spec files as items ``path/spec.yaml::case``.
"""

from .runner import (
    CaseResult,
    SpecCase,
    SpecSession,
    SpecTestFailure,
    discover,
    keyword_matcher,
    looks_like_spec_with_tests,
)

__all__ = [
    "CaseResult",
    "SpecCase",
    "SpecSession",
    "SpecTestFailure",
    "discover",
    "keyword_matcher",
    "looks_like_spec_with_tests",
]
