"""Fuzz harness: every case runs under a time bound and its outcome is counted.

``run_case`` is the one door a fuzz case goes through: the spec either loads /
compiles / checks, or fails with :class:`NnxBuildError`s whose spec errors all carry
a code and a location. Anything else (an untyped exception, a case over its time
bound) fails the test. The counts are printed at the end of the session by
``pytest_terminal_summary``, whatever ``-q`` / ``-s`` say.
"""

from __future__ import annotations

import contextlib
import resource
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from nnx_build.errors import NnxBuildError, SpecError, SpecErrors

#: seconds one case may take before it counts as a hang
CASE_TIMEOUT = 30

#: reproducible in CI: derandomized, no example database, no wall-clock deadline
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def fuzz(max_examples: int) -> settings:
    """The suite's settings with ``max_examples`` cases."""
    return settings(parent=FUZZ, max_examples=max_examples)


class Hang(Exception):
    """A fuzz case ran past CASE_TIMEOUT."""


@dataclass
class Tally:
    cases: Counter = field(default_factory=Counter)  # test name -> cases
    outcomes: Counter = field(default_factory=Counter)  # ok / spec-error / other typed error
    stages: Counter = field(default_factory=Counter)  # deepest stage reached per case
    codes: Counter = field(default_factory=Counter)
    untyped: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    seconds: float = 0.0


TALLY = Tally()


@contextlib.contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    def alarm(signum: int, frame: Any) -> None:
        raise Hang(f"case ran past {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def assert_located(err: NnxBuildError) -> None:
    """A typed error a user may see: spec errors have a code, a file and a line."""
    errors = err.errors if isinstance(err, SpecErrors) else [err] if isinstance(err, SpecError) else []
    if isinstance(err, SpecErrors):
        assert errors, "SpecErrors without errors"
    for e in errors:
        assert isinstance(e, SpecError), type(e)
        assert e.code and e.code.replace("-", "").isalpha(), e.code
        assert e.loc.file and e.loc.line >= 1 and e.loc.col >= 1, e.loc
        assert e.message, e
        TALLY.codes[e.code] += 1


def run_case(test: str, label: str, stages: list[tuple[str, Callable[[Any], Any]]], start: Any = None) -> str:
    """Runs ``stages`` in order (each gets the previous result); returns the outcome.

    Raises AssertionError on an untyped exception or a hang, after counting it.
    """
    TALLY.cases[test] += 1
    t0 = time.perf_counter()
    value = start
    reached = "none"
    try:
        with time_bound(CASE_TIMEOUT):
            for name, stage in stages:
                value = stage(value)
                reached = name
        outcome = "ok"
    except NnxBuildError as e:
        assert_located(e)
        outcome = "spec-error" if isinstance(e, SpecErrors | SpecError) else "nnx-error"
    except Hang:
        TALLY.hangs.append(f"{test}: {label}")
        raise AssertionError(f"hang ({CASE_TIMEOUT} s) on {label}") from None
    except Exception as e:  # the bug this suite hunts
        TALLY.untyped.append(f"{test}: {label}: {type(e).__name__}: {e}"[:300])
        raise
    finally:
        TALLY.seconds += time.perf_counter() - t0
    TALLY.outcomes[outcome] += 1
    TALLY.stages[reached] += 1
    return outcome


def pytest_terminal_summary(terminalreporter: Any) -> None:
    total = sum(TALLY.cases.values())
    if not total:
        return
    tr = terminalreporter
    tr.section("fuzz")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    tr.write_line(
        f"fuzz: {total} generated cases in {TALLY.seconds:.1f} s: {len(TALLY.untyped)} untyped exceptions, "
        f"{len(TALLY.hangs)} hangs; peak RSS {rss} MB"
    )
    for test, n in sorted(TALLY.cases.items()):
        tr.write_line(f"  {test}: {n}")
    tr.write_line("  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(TALLY.outcomes.items())))
    tr.write_line("  deepest stage: " + ", ".join(f"{k} {v}" for k, v in sorted(TALLY.stages.items())))
    tr.write_line("  error codes: " + ", ".join(f"{k} {v}" for k, v in TALLY.codes.most_common()))
    for line in TALLY.untyped[:20] + TALLY.hangs[:20]:
        tr.write_line("  BUG " + line)


@pytest.fixture
def tally() -> Tally:
    return TALLY


#: how far a fuzz test may raise the process's peak resident memory
MAX_RSS_GROWTH_MB = 1024


@pytest.fixture(autouse=True)
def _memory_bound():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    yield
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    assert after - before < MAX_RSS_GROWTH_MB, f"peak RSS rose from {before} MB to {after} MB"
