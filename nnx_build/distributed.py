"""Many processes, one job: ``jax.distributed`` with gloo collectives on CPU.

:func:`init_distributed` joins a multi-process job from command-line settings or the
environment a cluster launcher sets; :func:`launch` starts N such processes on this
machine (``nnx-build launch``). Nothing heavy is imported at module level.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import NnxBuildError

__all__ = ["ENV_COORDINATOR", "ENV_NUM_PROCESSES", "ENV_PROCESS_ID", "allgather_json", "init_distributed", "launch", "process_share"]

#: the environment a cluster launcher (or ``nnx-build launch``) sets for each process
ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID = "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"


def init_distributed(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    timeout: int = 120,
    heartbeat: int = 20,
) -> bool:
    """Joins a multi-process JAX job (``jax.distributed``), CPU collectives through gloo.

    Arguments not given are read from ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``
    and ``JAX_PROCESS_ID``; with none of them set this does nothing and returns False.
    Every process sees the devices of all processes (``jax.device_count()``), so the
    same ``--mesh`` spans them. A process that stops answering is noticed by the others
    within ``heartbeat`` seconds (they exit with an error instead of waiting forever).

    Raises:
      NnxBuildError: an incomplete set of settings, or the job cannot be joined.
    """
    import os

    coordinator = coordinator or os.environ.get(ENV_COORDINATOR) or None
    n_text = num_processes if num_processes is not None else os.environ.get(ENV_NUM_PROCESSES)
    i_text = process_id if process_id is not None else os.environ.get(ENV_PROCESS_ID)
    given = [v is not None for v in (coordinator, n_text, i_text)]
    if not any(given):
        return False
    if not all(given):
        raise NnxBuildError(
            f"several processes need all of --coordinator HOST:PORT, --num-processes N and --process-id I "
            f"(or {ENV_COORDINATOR}, {ENV_NUM_PROCESSES}, {ENV_PROCESS_ID}); received coordinator={coordinator!r}, "
            f"num_processes={n_text!r}, process_id={i_text!r}"
        )
    try:
        n, i = int(n_text), int(i_text)  # type: ignore[arg-type]
    except ValueError:
        raise NnxBuildError(f"--num-processes and --process-id are integers, received {n_text!r} and {i_text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise NnxBuildError(f"--process-id must be from 0 to --num-processes - 1 ({n - 1}), received {i}")
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator, num_processes=n, process_id=i, initialization_timeout=timeout, heartbeat_timeout_seconds=heartbeat
        )
    except Exception as e:  # the coordinator unreachable, a timeout
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NnxBuildError(f"process {i} of {n} cannot join the job at {coordinator}: {text}") from None
    return True


def process_share() -> tuple[int, int]:
    """``(this process's index, the number of processes)`` of the JAX job; ``(0, 1)`` outside one.

    Does not import JAX: a job can only have been joined (:func:`init_distributed`) once it is imported.
    """
    import sys

    jax = sys.modules.get("jax")
    if jax is None or not jax.distributed.is_initialized():
        return 0, 1
    return int(jax.process_index()), int(jax.process_count())


def allgather_json(value: Any) -> list[Any]:
    """Every process's ``value`` (anything JSON holds), in process order; ``[value]`` in one process.

    A collective: every process of the job calls it, in the same order as its other collectives.
    Two all-gathers (``jax.experimental.multihost_utils.process_allgather``): the lengths of
    the encoded values, then the values padded to the longest.
    """
    import json

    _, count = process_share()
    if count == 1:
        return [value]
    import numpy as np
    from jax.experimental import multihost_utils

    payload = json.dumps(value, separators=(",", ":")).encode()
    sizes = np.asarray(multihost_utils.process_allgather(np.array([len(payload)], np.int32))).reshape(count)
    buf = np.zeros(-(-int(sizes.max()) // 4) * 4, np.uint8)
    buf[: len(payload)] = np.frombuffer(payload, np.uint8)
    got = np.asarray(multihost_utils.process_allgather(buf.view(np.uint32))).reshape(count, -1)
    return [json.loads(got[i].view(np.uint8)[: int(sizes[i])].tobytes()) for i in range(count)]


def launch(argv: Sequence[str], n: int, *, devices_per_process: int | None = None, port: int | None = None,
           grace: float = 30.0) -> int:
    """Runs ``nnx-build ARGV`` as ``n`` local processes of one JAX job; returns the exit code.

    Process 0's output is shown; the others' stdout is dropped (their errors are shown).
    When one process fails, the others get ``grace`` seconds to notice and are then
    stopped, so a dead process never leaves the rest hanging.
    """
    import os
    import socket
    import subprocess
    import sys
    import time

    if port is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    procs = []
    for i in range(n):
        env = {**os.environ, ENV_COORDINATOR: f"127.0.0.1:{port}", ENV_NUM_PROCESSES: str(n), ENV_PROCESS_ID: str(i)}
        if devices_per_process is not None:
            flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform_device_count")]
            env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={devices_per_process}"])
        stdout = None if i == 0 else subprocess.DEVNULL
        procs.append(subprocess.Popen([sys.executable, "-m", "nnx_build.cli", *argv], env=env, stdout=stdout))
    failed: tuple[int, int] | None = None
    deadline: float | None = None
    try:
        while any(p.poll() is None for p in procs):
            for i, p in enumerate(procs):
                code = p.poll()
                if code not in (None, 0) and failed is None:
                    failed, deadline = (i, code), time.monotonic() + grace
            if deadline is not None and time.monotonic() > deadline:
                for p in procs:
                    if p.poll() is None:
                        p.kill()
            time.sleep(0.1)
    except KeyboardInterrupt:
        for p in procs:
            p.kill()
        raise
    codes = [p.wait() for p in procs]
    if failed is None and any(codes):
        failed = next((i, c) for i, c in enumerate(codes) if c)
    if failed is not None:
        i, code = failed
        print(f"error: process {i} of {n} exited with code {code}; the others were stopped", file=sys.stderr)
        return code if code > 0 else 1
    return 0
