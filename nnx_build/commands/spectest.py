"""``nnx-build test``: run the ``tests:`` sections of spec files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app
from .options import EntryPointsFlag, LimitOpt, MaxBytes, MaxParams, PluginOpt, pipeline_options
from .options import console as _out
from ..errors import NnxBuildError


class SpecTestsFailed(NnxBuildError):
    """Some spec test failed (exit code 1), bad usage (2), or no test was found (5)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code

PathsArg = Annotated[
    list[Path] | None,
    typer.Argument(help="Spec files or folders to search (default: specs/ if it exists, else .).", show_default=False),
]
KeywordOpt = Annotated[
    str | None,
    typer.Option("-k", help="Only cases whose id (path::case) matches: words are substrings; and, or, not, ( ).", show_default=False),
]
UpdateGoldens = Annotated[
    bool, typer.Option("--update-goldens", help="Write the golden .npz files of golden cases from this run instead of comparing.")
]
FailFast = Annotated[bool, typer.Option("--exitfirst", "-x", help="Stop at the first failing case.")]
ListOnly = Annotated[bool, typer.Option("--collect-only", help="List the cases, run nothing.")]


@app.command("test")
def test_cmd(
    paths: PathsArg = None,
    keyword: KeywordOpt = None,
    update_goldens: UpdateGoldens = False,
    exitfirst: FailFast = False,
    collect_only: ListOnly = False,
    limit: LimitOpt = None,
    max_params: MaxParams = None,
    max_bytes: MaxBytes = None,
    plugin: PluginOpt = None,
    plugins_from_entry_points: EntryPointsFlag = False,
) -> None:
    """Run the spec tests (the `tests:` section) of SPEC files; exit 1 if any case fails.

    Each failure names the spec file and the line of the case and of the key that
    failed, and shows what differed. The pytest plugin runs the same cases as items
    `path/spec.yaml::case`.

    Examples:

      nnx-build test                                  # every spec with tests under specs/

      nnx-build test specs/zoo/resnet50.yaml -k counts

      nnx-build test specs -k "zoo and not golden"

      nnx-build test specs/seed --update-goldens      # rewrite golden .npz files
    """
    import time

    from rich.markup import escape
    from rich.table import Table

    from ..testing.runner import SpecSession, discover, display_path, keyword_matcher

    options = pipeline_options(limit, max_params, max_bytes, plugin, plugins_from_entry_points)
    console = _out()
    if not paths:
        paths = [Path("specs")] if Path("specs").is_dir() else [Path(".")]
    try:
        matches = keyword_matcher(keyword)
    except ValueError as e:
        raise SpecTestsFailed(str(e), exit_code=2) from None
    try:
        files = discover(paths)
    except FileNotFoundError as e:
        raise SpecTestsFailed(str(e), exit_code=2) from None

    t0 = time.perf_counter()
    counts = {"passed": 0, "failed": 0, "error": 0, "deselected": 0}
    failures: list[str] = []
    stop = False
    for path in files:
        if stop:
            break
        try:
            session = SpecSession(path, options=options)
        except NnxBuildError as e:
            counts["error"] += 1
            failures.append(f"{display_path(path)}: the spec does not load\n{e}")
            console.print(f"[red]ERROR[/red] {escape(display_path(path))}: the spec does not load")
            if exitfirst:
                break
            continue
        cases = session.cases()
        selected = [c for c in cases if matches(c.id)]
        counts["deselected"] += len(cases) - len(selected)
        if not selected:
            continue
        table = Table(title=escape(display_path(path)), title_justify="left", show_edge=False, pad_edge=False)
        table.add_column("case")
        table.add_column("checks")
        table.add_column("result")
        table.add_column("time", justify="right")
        table.add_column("notes", overflow="fold")
        if collect_only:
            for c in selected:
                table.add_row(escape(c.name), ", ".join(c.case.checks), "", "", escape(str(c.loc)))
            console.print(table)
            continue
        for c in selected:
            with console.status(f"{escape(c.id)} ..."):
                result = session.run(c, update_goldens=update_goldens)
            counts[result.status] += 1
            mark = "[green]passed[/green]" if result.status == "passed" else "[red]FAILED[/red]"
            table.add_row(
                escape(c.name), ", ".join(result.checks), mark, f"{result.seconds:.1f}s", escape("; ".join(result.notes))
            )
            if result.error is not None:
                failures.append(result.error.render())
                if exitfirst:
                    stop = True
                    break
        session.release()
        console.print(table)
        console.print()

    for text in failures:
        console.rule("[red]failure", style="red")
        console.print(text, markup=False, highlight=False)
    parts = [f"{n} {k}" for k, n in counts.items() if n]
    total = counts["passed"] + counts["failed"] + counts["error"]
    summary = ", ".join(parts) if parts else "no spec tests found"
    style = "red" if counts["failed"] or counts["error"] else "green"
    if collect_only:
        console.print(f"{len(files)} spec file(s) found")
        return
    console.rule(f"[{style}]{escape(summary)} in {time.perf_counter() - t0:.1f}s", style=style)
    if counts["failed"] or counts["error"]:
        raise SpecTestsFailed(summary)
    if total == 0:
        raise SpecTestsFailed(f"no spec tests found in {', '.join(map(str, paths))}", exit_code=5)
