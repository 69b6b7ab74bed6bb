"""What an export target is: one object per target module, collected in :data:`~.targets.TARGETS`.

A target writes its files for a list of entry points (``export``) and loads them back as
callables (``load``); verification (in a fresh process) and ``nnx-build bench`` call
``load``, so a runtime is loaded in one place only. Nothing heavy is imported here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .common import Entry

__all__ = ["ExportOptions", "Run", "Target"]


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class ExportOptions:
    """The options every target's ``export`` receives (a target reads the ones it needs)."""

    platforms: tuple[str, ...] = ("cpu",)
    weights_as_args: bool = False
    version: int = 1
    mlir_text: bool = False


@dataclass(frozen=True)
class Run:
    """One loaded entry point of an artifact.

    ``call(*prepare(inputs))`` runs it on host arrays (in the entry's input order) and
    returns its outputs in the entry's output order; ``prepare`` converts the inputs once
    to what the runtime reads (device arrays, tensors), so a benchmark times ``call`` alone;
    ``block(result)`` waits for an asynchronous result.
    """

    call: Callable[..., Sequence[Any]]
    prepare: Callable[[list[Any]], list[Any]] = _same
    block: Callable[[Any], Any] = _same

    def __call__(self, inputs: list[Any]) -> Sequence[Any]:
        return self.block(self.call(*self.prepare(inputs)))


#: ``load(root, section, entry)``: ``root`` is the export folder, ``section`` the target's
#: manifest section (what ``export`` returned), ``entry`` one entry of ``manifest["entries"]``;
#: returns run name -> :class:`Run` (the target's own name first; more for variants, such as
#: StableHLO's ``.mlirbc`` module compiled by XLA, ``stablehlo-mlir``).
Loader = Callable[[Path, Mapping[str, Any], Mapping[str, Any]], dict[str, Run]]
#: ``export(entries, root, options)``: writes under ``root / target.folder``; returns the
#: manifest section (JSON-ready; ``"dir"`` is the artifact's folder relative to ``root``).
Exporter = Callable[[list["Entry"], Path, ExportOptions], dict[str, Any]]


@dataclass(frozen=True)
class Target:
    """An export target.

    Attributes:
      name: the ``--to`` name and the manifest key.
      summary: one line for ``--help`` and the docs.
      folder: its folder in an export (``stablehlo``); ``layout`` describes what it holds.
      export: see :data:`Exporter`.
      load: see :data:`Loader`; runs in the verification process.
      dtypes: input and output dtypes the runtime can run (``None``: every dtype).
      module: where the verification process finds the target: ``"pkg.module"`` (its
        ``TARGET``) or ``"pkg.module:NAME"``; ``export``'s module when left empty.
    """

    name: str
    summary: str
    folder: str
    layout: str
    export: Exporter
    load: Loader
    dtypes: frozenset[str] | None = None
    module: str = field(default="")

    def __post_init__(self) -> None:
        if not self.module:
            object.__setattr__(self, "module", getattr(self.export, "__module__", "") or "")

    def unsupported_dtypes(self, dtypes: Sequence[str]) -> list[str]:
        """The dtypes in ``dtypes`` that this target cannot run."""
        if self.dtypes is None:
            return []
        return sorted({d for d in dtypes if d not in self.dtypes})
