"""A target written the way CONTRIBUTING's recipe says: one module, one ``TARGET``.

It stores each entry point as a ``jax.export`` artifact under ``dummy/`` and runs it back
with JAX. ``LIAR`` loads as zeros (a target whose artifacts disagree with JAX) and
``BROKEN`` cannot convert anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nnx_build.exporters import ExportOptions, Run, Target
from nnx_build.exporters.errors import ConversionError


def _export(entries: list[Any], root: Path, options: ExportOptions) -> dict[str, Any]:
    import jax
    from jax import export

    from nnx_build.exporters.common import symbolic_args

    folder = root / "dummy"
    folder.mkdir()
    files = {}
    for entry in entries:
        exp = export.export(jax.jit(entry.ff.closed()), platforms=options.platforms)(*symbolic_args(entry.inputs))
        (folder / f"{entry.name}.bin").write_bytes(exp.serialize())
        files[entry.name] = f"{entry.name}.bin"
    return {"dir": "dummy", "entries": files}


def _load(root: Path, section: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Run]:
    from jax import export

    exp = export.deserialize(bytearray((root / section["dir"] / section["entries"][entry["name"]]).read_bytes()))

    def call(*xs: Any) -> tuple[Any, ...]:
        out = exp.call(*xs)
        return tuple(out) if isinstance(out, tuple | list) else (out,)

    return {"dummy": Run(call)}


TARGET = Target("dummy", "a jax.export artifact per entry (tests)", "dummy", "dummy/<entry>.bin", _export, _load)


def _load_zeros(root: Path, section: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Run]:
    import numpy as np

    run = _load(root, section, entry)["dummy"]
    return {"liar": Run(lambda *xs: tuple(np.zeros_like(np.asarray(v)) for v in run.call(*xs)))}


def _refuse(entries: list[Any], root: Path, options: ExportOptions) -> dict[str, Any]:
    raise ConversionError("broken: this target converts nothing")


LIAR = Target("liar", "outputs zeros (tests)", "dummy", "dummy/<entry>.bin", _export, _load_zeros, module=__name__ + ":LIAR")
# a name with a hyphen, as a plug-in's may have: its runs are "tf-liar", not "tf"
HYPHENATED_LIAR = Target("tf-liar", "outputs zeros (tests)", "dummy", "dummy/<entry>.bin", _export, _load_zeros, module=__name__ + ":HYPHENATED_LIAR")
BROKEN = Target("broken", "never converts (tests)", "broken", "broken/", _refuse, _load)
