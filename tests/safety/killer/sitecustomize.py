"""Counts the export's file-system steps under NNX_KILL_ROOT; os._exit(137) before step NNX_KILL_AT."""

import importlib.abc
import importlib.util
import os
import shutil
import sys

ROOT = os.path.realpath(os.environ["NNX_KILL_ROOT"]) + os.sep
AT = int(os.environ.get("NNX_KILL_AT", "0"))  # 0: never
LOG = os.environ["NNX_KILL_LOG"]
NO_EXCHANGE = os.environ.get("NNX_KILL_NO_EXCHANGE") == "1"
count = 0


def inside(path):
    try:
        return os.path.realpath(os.fspath(path)).startswith(ROOT)
    except TypeError:
        return False


def step(name, paths):
    """Records the step; True when the process must die at it."""
    global count
    if not any(inside(p) for p in paths):
        return False
    count += 1
    with open(LOG, "a", encoding="utf-8") as f:
        f.write(f"{count} {name} {' '.join(os.path.basename(os.fspath(p)) for p in paths)}\n")
    return count == AT


def wrap(name, real):
    def call(src, dst, *a, **k):
        if step(name, (src, dst)):
            os._exit(137)
        return real(src, dst, *a, **k)
    return call


os.rename = wrap("rename", os.rename)
os.replace = wrap("replace", os.replace)
real_rmtree = shutil.rmtree


def rmtree(path, *a, **k):
    if step("rmtree", (path,)):
        for dirpath, _, names in os.walk(path):  # killed midway: one file deleted
            if names:
                os.unlink(os.path.join(dirpath, names[0]))
                break
        os._exit(137)
    return real_rmtree(path, *a, **k)


shutil.rmtree = rmtree


class PatchExchange(importlib.abc.MetaPathFinder):
    """Counts nnx_build.fileio.exchange (renameat2) as a step too; NNX_KILL_NO_EXCHANGE makes it unsupported."""

    def find_spec(self, name, path, target=None):
        if name != "nnx_build.fileio":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            real = module.exchange

            def exchange(a, b):
                if step("exchange", (a, b)):
                    os._exit(137)
                return False if NO_EXCHANGE else real(a, b)

            module.exchange = exchange

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, PatchExchange())
