"""Errors of export and verification: one line each in the CLI, exit code 2."""

from __future__ import annotations

from ..errors import NnxBuildError
from ..weights.errors import WeightsError

__all__ = ["ConversionError", "ExportError", "OutputExistsError", "PartialExportError", "VerificationError", "WeightsError"]


class ExportError(NnxBuildError):
    """An export could not be written (unwritable folder, unknown target, ...)."""


class OutputExistsError(ExportError):
    """The output folder exists and ``force`` was not given."""


class ConversionError(ExportError):
    """A converter (jax.export, jax2tf, jax2onnx) refused the model."""


class VerificationError(ExportError):
    """A reloaded artifact disagrees with JAX, or could not be reloaded."""


class PartialExportError(ConversionError):
    """Some targets failed; ``succeeded`` lists those that converted (and verified)."""

    def __init__(self, failed: dict[str, Exception], succeeded: list[str], *, verified: bool = True):
        self.failed = failed
        self.succeeded = succeeded
        reasons = "; ".join(str(e) for e in failed.values())
        ok = ", ".join(succeeded)
        what = "converted and verified" if verified else "converted"
        hint = f"{ok} {what}; export just those with to={','.join(succeeded)!r}" if succeeded else "no target succeeded"
        super().__init__(f"{reasons}\n{hint}")

    def with_message(self, message: str) -> PartialExportError:
        """The same error with another message (the command line's own wording)."""
        self.args = (message,)
        return self

    def command(self, argv: list[str]) -> str:
        """``argv`` (an ``nnx-build export`` command line) with ``--to`` naming the targets that succeeded."""
        import shlex

        args = list(argv)
        to = ",".join(self.succeeded)
        for i, a in enumerate(args):
            if a == "--to" and i + 1 < len(args):
                args[i + 1] = to
                break
            if a.startswith("--to="):
                args[i] = f"--to={to}"
                break
        else:
            args += ["--to", to]
        return shlex.join(args)
