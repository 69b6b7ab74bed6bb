"""Graph steps that are not layers: calling an existing module again (tied weights)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..layer_table import register
from ..schemas.common import Config


class CallConfig(Config):
    """Calls a module another step created, sharing its variables (tied / shared modules).

    ``- logits: {type: call, module: wte, method: attend, in: h}`` computes
    ``model.wte.attend(h)``; without ``method`` the module itself is called.
    """

    type: Literal["call"] = "call"
    module: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$", description="attribute path of the module")
    method: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


def _call(cfg: CallConfig, *args: Any, **kwargs: Any) -> Any:  # run by the interpreter itself
    raise NotImplementedError


register("call", CallConfig, _call, kind="call", group="graph")
