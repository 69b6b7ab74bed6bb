"""Run in a fresh process: check hostile specs with an audit hook watching.

Usage: python payload_runner.py SENTINEL_DIR SPEC...  -> one JSON line on stdout.

The benign seed spec is checked first (so everything a normal check imports is
imported), then the audit hook goes in and each hostile spec goes through the
``nnx-build check`` command's code path. The hook records process creation, code
execution and every import; the report lists them for the test to judge.
"""

from __future__ import annotations

import io
import json
import os
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from nnx_build.builder import check  # noqa: E402
from nnx_build.cli import _report_error  # noqa: E402

WATCH = (
    "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.forkpty", "subprocess.Popen",
    "ctypes.dlopen", "ctypes.dlsym", "pty.spawn", "webbrowser.open", "socket.connect", "urllib.Request",
)


def run(spec: str) -> tuple[int, str]:
    """What ``nnx-build check SPEC`` does, minus typer (whose annotation handling compiles code)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            check(spec)
            code = 0
        except Exception as e:  # noqa: BLE001  (mapped like the CLI maps it)
            code = _report_error(e)
    return code, out.getvalue() + err.getvalue()


def main_() -> None:
    root = Path(__file__).resolve().parents[2]
    sentinel_dir, specs = sys.argv[1], sys.argv[2:]
    warm = run(str(root / "specs/seed/model.yaml"))
    assert warm[0] == 0, warm
    broken = Path(sentinel_dir).parent / "warm-up-broken.yaml"
    broken.write_text("format: 1\nname: m\ninputs: {x: [batch, 4]}\nlayers:\n  - {type: Lienar}\n", encoding="utf-8")
    assert run(str(broken))[0] == 2  # the error path's imports (rich's emoji table ...)
    events: list[tuple[str, str]] = []
    current = ["warm-up"]

    def hook(event: str, args: tuple) -> None:
        if event.startswith(WATCH) or event in ("exec", "import", "compile", "builtins.input", "os.remove", "os.rename", "shutil.rmtree"):
            detail = ""
            if event == "import":
                detail = str(args[0])
            elif event == "compile":  # ast.parse and typing's ForwardRef compile too: keep the source
                src = args[0]
                detail = src.decode(errors="replace") if isinstance(src, bytes) else str(src) if src is not None else ""
                detail = f"{args[1]}: {detail}"
            elif event == "exec":  # what the executed code object names
                code = args[0]
                detail = " ".join(getattr(code, "co_names", ())) + " @" + str(getattr(code, "co_filename", "?"))
            else:
                detail = repr(args)[:200]
            events.append((current[0], event, detail[:300]))

    before = set(sys.modules)
    sys.addaudithook(hook)
    results = []
    for spec in specs:
        current[0] = spec
        code, text = run(spec)
        results.append({"spec": spec, "exit": code, "output": text[-2000:]})
    current[0] = "done"
    report = {
        "results": results,
        "events": events,
        "new_modules": sorted(set(sys.modules) - before),
        "sentinels": sorted(os.listdir(sentinel_dir)),
    }
    sys.stdout.write("\n" + json.dumps(report) + "\n")


if __name__ == "__main__":
    main_()
