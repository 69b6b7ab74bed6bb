"""``make mutants``: mutmut over nnx_build's builder/, exporters/, layers/ and training/.

The files mutated and the tests run default to ``[tool.mutmut]`` in pyproject.toml; two
environment variables narrow them for a quicker run (docs/testing.md):

* ``MUTATE``: globs of the files to mutate, space-separated
  (``MUTATE="nnx_build/layers/* nnx_build/builder/shapes.py"``);
* ``TESTS``: the test files or folders run against each mutant (``TESTS="tests/layers"``).

Arguments are mutmut's (``run``, ``results``, ``show NAME``, ``apply NAME``), or:

* ``score``: a table of each mutated file's mutants by outcome and its score, killed /
  (killed + survived + no tests), the mutants whose outcome is known;
* ``recheck [NAME...]``: runs every test of ``TESTS`` (not only those mutmut picked)
  against each surviving mutant, or the ones named, and prints which of them fail. mutmut
  picks a mutant's tests by which tests called the mutated function; a function called
  only while a module is imported (a table of layers built in a loop) is called by none,
  so its mutants are run against no test that uses what it built.

Results are kept in ``mutants/``: a second run tests only what changed.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path


def score() -> None:
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.stats import status_by_exit_code
    from mutmut.utils.file_utils import walk_mutatable_files

    columns = ("killed", "survived", "no tests", "timeout", "suspicious", "not checked")
    total: Counter[str] = Counter()
    print(f"| file | {' | '.join(columns)} | score |")
    print(f"|---|{'---:|' * (len(columns) + 1)}")
    for path in walk_mutatable_files():
        if not (Path("mutants") / f"{path}.meta").exists():
            continue
        data = SourceFileMutationData(path=path)
        data.load()
        counts = Counter(status_by_exit_code[code] for code in data.exit_code_by_key.values())
        if not counts or counts["not checked"] == sum(counts.values()):
            continue
        total += counts
        print(f"| {path} | {' | '.join(str(counts[c]) for c in columns)} | {_score(counts)} |")
    print(f"| total | {' | '.join(str(total[c]) for c in columns)} | {_score(total)} |")


def _score(counts: Counter[str]) -> str:
    known = counts["killed"] + counts["survived"] + counts["no tests"]
    return f"{100 * counts['killed'] / known:.0f}%" if known else "-"


def forget_unmutated_copies() -> None:
    """Deletes the copies mutmut made of files it did not mutate then (outside ``MUTATE``).

    mutmut keeps ``mutants/`` between runs and takes such a copy for a file already done,
    so a file added to ``MUTATE`` later would get no mutants; and its map of which tests
    call which function (``mutmut-stats.json``) knows no function of that file, so it is
    deleted too (rebuilt by the run).
    """
    from mutmut.utils.file_utils import walk_mutatable_files

    root = Path("mutants")
    stale = [p for p in walk_mutatable_files() if (root / p).exists() and not (root / f"{p}.meta").exists()]
    for p in stale:
        (root / p).unlink()
    if stale:
        (root / "mutmut-stats.json").unlink(missing_ok=True)


def recheck(names: list[str]) -> None:
    import subprocess

    from mutmut import configuration
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.stats import status_by_exit_code
    from mutmut.utils.file_utils import walk_mutatable_files

    config = configuration.config()
    if not names:
        for path in walk_mutatable_files():
            if (Path("mutants") / f"{path}.meta").exists():
                data = SourceFileMutationData(path=path)
                data.load()
                names += [k for k, v in data.exit_code_by_key.items() if status_by_exit_code[v] == "survived"]
    tests = config.pytest_add_cli_args_test_selection
    for name in names:
        env = {**os.environ, "MUTANT_UNDER_TEST": name}
        proc = subprocess.run([sys.executable, "-m", "pytest", *config.pytest_add_cli_args, "-x", "--no-header", *tests],
                              cwd="mutants", env=env, capture_output=True, text=True)
        failed = [line.split(" ")[1] for line in proc.stdout.splitlines() if line.startswith("FAILED ")]
        verdict = f"killed by {failed[0]}" if proc.returncode == 1 and failed else "survived" if proc.returncode == 0 else f"exit {proc.returncode}"
        print(f"{name}: {verdict}", flush=True)


def main(argv: list[str]) -> None:
    from mutmut import configuration
    from mutmut.__main__ import cli

    config = configuration.config()
    if os.environ.get("MUTATE"):
        config.only_mutate = os.environ["MUTATE"].split()
    if os.environ.get("TESTS"):
        config.pytest_add_cli_args_test_selection = os.environ["TESTS"].split()
    if argv == ["score"]:
        score()
        return
    if argv[:1] == ["recheck"]:
        recheck(argv[1:])
        return
    argv = argv or ["run"]
    if argv[0] == "run":
        forget_unmutated_copies()
    cli(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
