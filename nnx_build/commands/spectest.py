"""``nnx-build test``: run the ``tests:`` sections of spec files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import NnxBuildError
from ..testing.runner import EXIT_NO_TESTS
from .app import app
from .options import BuildArgs, build_options
from .options import console as _out


class SpecTestsFailed(NnxBuildError):
    """Some spec test failed (exit code 1), bad usage or a refused spec (2), or no case ran (5)."""

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
@build_options(weights=True)
def test_cmd(
    paths: PathsArg = None,
    keyword: KeywordOpt = None,
    update_goldens: UpdateGoldens = False,
    exitfirst: FailFast = False,
    collect_only: ListOnly = False,
    *,
    build: BuildArgs,
) -> None:
    """Run the spec tests (the `tests:` section) of SPEC files.

    Each failure names the spec file and the line of the case and of the key that
    failed, and shows what differed. The pytest plugin runs the same cases as items
    `path/spec.yaml::case`.

    Exit codes: 0 every selected case passed; 1 a case failed, or a spec or one of
    its cases does not load; 2 bad usage (a missing path, a bad -k expression) or a
    spec refused by a limit or budget (--limit, --max-params, --max-bytes, out of
    memory), as every command; 5 no case ran (no spec with tests found, or -k matched
    nothing), as pytest's "no tests ran".

    Examples:

      nnx-build test                                  # every spec with tests under specs/

      nnx-build test specs/zoo/resnet50.yaml -k counts

      nnx-build test specs -k "zoo and not golden"

      nnx-build test specs/seed --update-goldens      # rewrite golden .npz files

      nnx-build test spec.yaml --weights model.safetensors   # the cases on pretrained weights
    """
    from rich.markup import escape
    from rich.table import Table

    from ..testing import discover, display_path, run
    from ..testing.results import CaseResult, SpecCase

    options = build.options()
    console = _out()
    if not paths:
        paths = [Path("specs")] if Path("specs").is_dir() else [Path(".")]
    try:
        files = discover(paths)
    except FileNotFoundError as e:
        raise SpecTestsFailed(str(e), exit_code=2) from None

    tables: dict[Path, Table] = {}

    def on_file(path: Path, cases: list[SpecCase]) -> None:
        table = Table(title=escape(display_path(path)), title_justify="left", show_edge=False, pad_edge=False)
        for column in ("case", "checks", "result"):
            table.add_column(column)
        table.add_column("time", justify="right")
        table.add_column("notes", overflow="fold")
        if collect_only:
            for c in cases:
                table.add_row(escape(c.name), ", ".join(c.checks), "", "", escape(str(c.loc)))
        tables[path] = table

    def on_result(result: CaseResult) -> None:
        mark = {"passed": "[green]passed[/green]", "failed": "[red]FAILED[/red]"}.get(result.status, "[red]ERROR[/red]")
        tables[result.case.path].add_row(
            escape(result.case.name), ", ".join(result.checks), mark, f"{result.seconds:.1f}s", escape("; ".join(result.notes))
        )

    def on_file_done(path: Path) -> None:
        console.print(tables.pop(path))
        console.print()

    try:
        summary = run(
            files,
            keyword=keyword,
            update_goldens=update_goldens,
            exitfirst=exitfirst,
            collect_only=collect_only,
            on_file=on_file,
            on_result=on_result,
            on_file_done=on_file_done,
            around_case=lambda c: console.status(f"{escape(c.id)} ..."),
            options=options,
        )
    except ValueError as e:  # a bad -k expression
        raise SpecTestsFailed(str(e), exit_code=2) from None

    for result in summary.failed:
        console.rule("[red]failure", style="red")
        error = result.error
        console.print(error.render() if error is not None else result.case.id, markup=False, highlight=False)
    if summary.exit_code == EXIT_NO_TESTS:
        where = f" in {', '.join(map(str, paths))}" if not summary.files else ""
        raise SpecTestsFailed(f"{summary.text}{where}; no spec test ran", exit_code=EXIT_NO_TESTS)
    if collect_only:
        console.print(summary.text)
        return
    style = "red" if summary.failed else "green"
    console.rule(f"[{style}]{escape(summary.text)} in {summary.seconds:.1f}s", style=style)
    if summary.exit_code:
        raise SpecTestsFailed(summary.text, exit_code=summary.exit_code)
