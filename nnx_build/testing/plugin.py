"""pytest plugin: spec files with a ``tests:`` section are collected as test items.

Installed with nnx-build (entry point ``pytest11``), so it is active in any project
whose environment has nnx-build. Each case becomes an item ``path/spec.yaml::case``;
a failure points at the spec file and the line of the case, and shows what differed.
The cases of one file share its compiled program, abstract report and built models.

Which files are collected: ``.yaml`` / ``.yml`` / ``.json`` files that are
unmistakably specs with a ``tests:`` section (an integer ``format`` and ``layers`` or
``inputs``, or the ``# yaml-language-server: $schema=...nnx-spec...`` line; see
:mod:`nnx_build.testing.discovery`), found where pytest looks. When the ini option
``nnx_build_specs`` is set, only files under its paths are collected, and there a
``format`` key is enough. Other files are never touched, and a spec that does not load
gives one failing item ``path::<spec>``, never a collection error.

In ``pyproject.toml``::

    [tool.pytest.ini_options]
    testpaths = ["tests", "specs"]
    nnx_build_specs = ["specs"]

Options: ``--nnx-update-goldens`` writes the golden ``.npz`` files of golden cases
instead of comparing; ``-p no:nnx_build`` switches the plugin off. A case with
``slow: true`` is marked ``pytest.mark.slow``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .discovery import SUFFIXES, looks_like_spec_with_tests

__all__ = ["SpecFile", "SpecItem"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nnx-build", "nnx-build spec tests")
    group.addoption(
        "--nnx-update-goldens",
        action="store_true",
        default=False,
        help="write the golden .npz files of spec test golden cases from this run instead of comparing",
    )
    parser.addini(
        "nnx_build_specs",
        type="paths",
        default=[],
        help="folders (or files) whose spec files with a tests: section are collected (default: anywhere pytest collects)",
    )


def _under(path: Path, roots: list[Path]) -> bool:
    path = path.resolve()
    for root in roots:
        root = Path(root).resolve()
        if path == root or root in path.parents:
            return True
    return False


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in SUFFIXES:
        return None
    roots = list(parent.config.getini("nnx_build_specs"))
    if roots and not _under(file_path, roots):
        return None
    try:
        if not looks_like_spec_with_tests(file_path, declared=bool(roots)):
            return None
    except Exception:  # noqa: BLE001  (never break someone else's collection)
        return None
    return SpecFile.from_parent(parent, path=file_path)


class SpecFile(pytest.File):
    """A spec file; its children are the cases of its ``tests:`` section.

    A file that does not load gives one failing item (``path::<spec>``) holding the
    located errors; a case that does not validate is a failing item of its own.
    """

    _session: Any = None

    def collect(self) -> Any:
        from .session import load_session

        self._session, cases = load_session(self.path)
        for case in cases:
            item = SpecItem.from_parent(self, name=case.name, case=case)
            if case.case is not None and case.case.slow:
                item.add_marker(pytest.mark.slow)
            yield item

    def release(self) -> None:
        if self._session is not None:
            self._session.release()


class SpecItem(pytest.Item):
    """One case of a spec file's ``tests:`` section."""

    def __init__(self, *, case: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.case = case
        self.notes: list[str] = []

    def runtest(self) -> None:
        parent = self.parent
        assert isinstance(parent, SpecFile)
        from .checks import run_case
        from .results import SpecTestFailure

        update = bool(self.config.getoption("nnx_update_goldens", default=False))
        result = run_case(parent._session, self.case, update_goldens=update)
        self.notes = result.notes
        for note in result.notes:
            self.user_properties.append(("note", note))
        if result.failures:
            raise SpecTestFailure(self.case, result.failures)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:  # type: ignore[override]
        from .results import SpecTestFailure

        if isinstance(excinfo.value, SpecTestFailure):
            return excinfo.value.render()
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, self.case.loc.line - 1, f"{self.case.id} (spec test, line {self.case.loc.line})"


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Drops a spec file's built models after its last case has run."""
    if isinstance(item, SpecItem) and (nextitem is None or nextitem.parent is not item.parent):
        parent = item.parent
        if isinstance(parent, SpecFile):
            parent.release()
