"""pytest plugin: spec files with a ``tests:`` section are collected as test items.

Installed with nnx-build (entry point ``pytest11``), so it is active in any project
whose environment has nnx-build. Each case becomes an item ``path/spec.yaml::case``;
a failure points at the spec file and the line of the case, and shows what differed.
The cases of one file share its compiled program, abstract report and built models.

Which files are collected:

* ``.yaml`` / ``.yml`` / ``.json`` files with top-level ``format:`` and ``tests:`` keys,
  found where pytest looks (``testpaths`` or the paths given on the command line);
* limited to folders listed in the ini option ``nnx_build_specs`` when it is set.

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

from .runner import SUFFIXES, looks_like_spec_with_tests

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
    roots = parent.config.getini("nnx_build_specs")
    if roots and not _under(file_path, list(roots)):
        return None
    if not looks_like_spec_with_tests(file_path):
        return None
    return SpecFile.from_parent(parent, path=file_path)


class SpecLoadError(Exception):
    """The spec file does not load: its located errors, as text."""


class SpecFile(pytest.File):
    """A spec file; its children are the cases of its ``tests:`` section."""

    _session: Any = None

    def session_for_cases(self) -> Any:
        if self._session is None:
            from ..errors import NnxBuildError
            from .runner import SpecSession

            try:
                self._session = SpecSession(self.path)
            except NnxBuildError as e:
                raise SpecLoadError(str(e)) from None
        return self._session

    def collect(self) -> Any:
        session = self.session_for_cases()
        for case in session.cases():
            item = SpecItem.from_parent(self, name=case.name, case=case)
            if case.case.slow:
                item.add_marker(pytest.mark.slow)
            yield item

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:  # type: ignore[override]
        if isinstance(excinfo.value, SpecLoadError):
            return f"spec file does not load:\n{excinfo.value}"
        return super().repr_failure(excinfo)

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
        update = bool(self.config.getoption("nnx_update_goldens", default=False))
        result = parent.session_for_cases().check(self.case, update_goldens=update)
        self.notes = result.notes
        for note in result.notes:
            self.user_properties.append(("note", note))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:  # type: ignore[override]
        from .runner import SpecTestFailure

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
