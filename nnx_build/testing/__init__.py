"""Spec tests: the ``tests:`` section of a spec, run by ``nnx-build test`` and by pytest.

* :mod:`~nnx_build.testing.discovery`: which files are specs with tests; ``-k``;
* :mod:`~nnx_build.testing.cases`: a spec's cases read one by one; :func:`validate_tests`;
* :mod:`~nnx_build.testing.session`: what a spec file's cases share (the compiled
  program, the abstract report, built models);
* :mod:`~nnx_build.testing.checks`: the checks of one case (results in ``results``);
* :mod:`~nnx_build.testing.runner`: :func:`run` over files, giving a :class:`Summary`;
* :mod:`~nnx_build.testing.plugin`: the pytest plugin (entry point ``pytest11``),
  collecting spec files as items ``path/spec.yaml::case``.
"""

from .cases import spec_cases, validate_tests
from .discovery import discover, display_path, keyword_matcher, looks_like_spec_with_tests
from .results import CaseResult, Failure, SpecCase, SpecTestFailure
from .runner import Summary, run
from .session import SpecSession, load_session

__all__ = [
    "CaseResult",
    "Failure",
    "SpecCase",
    "SpecSession",
    "SpecTestFailure",
    "Summary",
    "discover",
    "display_path",
    "keyword_matcher",
    "load_session",
    "looks_like_spec_with_tests",
    "run",
    "spec_cases",
    "validate_tests",
]
