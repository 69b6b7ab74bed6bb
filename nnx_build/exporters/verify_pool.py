"""The verification processes of an export: one per target, a bounded number at once.

:class:`ChildPool` runs ``python -m nnx_build.exporters.verify`` for one target at a time
as soon as its artifacts are written, in a thread of its own that waits for a free slot:
while the export still converts other targets, ``jobs`` processes run (one core is left
to the conversions), afterwards ``jobs + 1``. Each process reports its outputs in an
``.npz`` (and its errors and timings in a ``.json`` beside) or fails as a whole (an
exit code, a timeout), which counts against its target only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .dtypes import load_arrays

__all__ = ["CACHE_LIMIT_BYTES", "ChildJob", "ChildPool", "child_env", "default_jobs"]

#: an artifact folder at least this large runs its process without JAX's persistent
#: compilation cache: its programs hold the weights as constants, and writing such an entry
#: (the weights again, compressed) takes longer than compiling the program, for a file only
#: a later re-verification of the same folder would read
CACHE_LIMIT_BYTES = 64 * 2**20


def default_jobs() -> int:
    """Verification processes running beside a conversion: the cores but one (at least one)."""
    return max(1, (os.cpu_count() or 2) - 1)


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


def child_env(folder: Path | None) -> dict[str, str]:
    """The environment of a verification process checking the artifacts in ``folder``."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # the child imports what this process imported from (plugins, targets outside the package)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    if folder is not None and _folder_bytes(folder) >= CACHE_LIMIT_BYTES:
        env["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    return env


@dataclass
class ChildJob:
    """One verification process: its command line pieces and, once run, its outcome.

    ``outcome`` is ``(outputs, info)`` (the arrays and the child's ``.json``) or a text
    saying why the process gave nothing; ``seconds`` its wall time.
    """

    name: str
    root: Path
    inputs: Path
    work: Path
    manifest: Path
    modules: dict[str, str] = field(default_factory=dict)
    runtimes: tuple[str, ...] = ()
    folder: Path | None = None
    outcome: Any = None
    seconds: float = 0.0

    def command(self) -> list[str]:
        cmd = [
            sys.executable, "-m", "nnx_build.exporters.verify", str(self.root), "--inputs", str(self.inputs),
            "--out", str(self.work / "outputs.npz"), "--manifest", str(self.manifest),
        ]
        for name, module in self.modules.items():
            cmd += ["--target", f"{name}={module}"]
        for runtime in self.runtimes:
            cmd += ["--runtime", runtime]
        return cmd


class ChildPool:
    """Runs :class:`ChildJob` processes, at most ``limit`` at once; :meth:`close` kills those left."""

    def __init__(self, jobs: int | None = None, timeout: float | None = 900):
        self.jobs = max(1, jobs if jobs is not None else default_jobs())
        self.limit = self.jobs
        self.timeout = timeout
        self.cond = threading.Condition()
        self.running = 0
        self.closed = False
        self.threads: list[threading.Thread] = []
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, job: ChildJob) -> None:
        """Runs ``job`` in a thread of its own, as soon as a slot is free."""
        thread = threading.Thread(target=self._run, args=(job,), name=f"nnx-build-verify-{job.name}", daemon=True)
        self.threads.append(thread)
        thread.start()

    def widen(self) -> None:
        """Nothing converts any more: one more process at a time."""
        with self.cond:
            self.limit = self.jobs + 1
            self.cond.notify_all()

    def wait(self) -> None:
        """Returns when every job started has its outcome."""
        for thread in self.threads:
            thread.join()

    def close(self) -> None:
        """Kills the processes still running; jobs not yet started never start."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()
            for proc in self.procs:
                if proc.poll() is None:
                    proc.kill()

    def _run(self, job: ChildJob) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.running < self.limit or self.closed)
            if self.closed:
                job.outcome = "verification was stopped before this target's process started"
                return
            self.running += 1
        t0 = time.perf_counter()
        try:
            job.outcome = self._process(job)
        except Exception as e:  # noqa: BLE001  (reported as the target's failure)
            job.outcome = f"verification process could not run: {type(e).__name__}: {e}"
        finally:
            job.seconds = round(time.perf_counter() - t0, 3)
            with self.cond:
                self.running -= 1
                self.cond.notify_all()

    def _process(self, job: ChildJob) -> Any:
        out_path = job.work / "outputs.npz"
        with self.cond:
            if self.closed:
                return "verification was stopped before this target's process started"
            proc = subprocess.Popen(job.command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=child_env(job.folder))
            self.procs.append(proc)
        try:
            _, stderr = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return f"verification process timed out after {self.timeout:g} s"
        if proc.returncode != 0 or not out_path.exists():
            tail = [line for line in (stderr or "").strip().splitlines() if line.strip()][-1:] or ["no output"]
            return f"verification process exited with {proc.returncode}: {tail[0]}"
        return load_arrays(out_path), json.loads(out_path.with_suffix(".json").read_text(encoding="utf-8"))
