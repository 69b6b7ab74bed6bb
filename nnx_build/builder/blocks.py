"""Uses of a spec's blocks: the arguments a use gives, checked against the block's ``args:``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import did_you_mean
from ..schemas.spec import BlockSpec

__all__ = ["arg_type_ok", "block_arguments"]


def block_arguments(
    bname: str,
    block: BlockSpec,
    fields: dict[str, Any],
    spath: tuple[Any, ...],
    err: Callable[[str, str, tuple[Any, ...]], None],
) -> dict[str, Any] | None:
    """The arguments of a use of block ``bname`` (defaults filled in), or None when a
    problem was reported through ``err(code, message, path)``."""
    args: dict[str, Any] = {}
    ok = True
    for k in fields:
        if k not in block.args:
            err(
                "unknown-field",
                f"block '{bname}' has no argument '{k}'{did_you_mean(k, block.args)}; "
                f"its arguments: {', '.join(block.args) or '(none)'}",
                (*spath, k),
            )
            ok = False
    for aname, arg in block.args.items():
        if aname in fields:
            value = fields[aname]
            if not arg_type_ok(arg.type, value):
                err("wrong-type", f"block '{bname}' argument '{aname}' expects {arg.type}, received {value!r}", (*spath, aname))
                ok = False
            args[aname] = value
        elif arg.required:
            err("missing-field", f"block '{bname}' needs argument '{aname}' ({arg.type})", spath)
            ok = False
        else:
            args[aname] = arg.default
    return args if ok else None


def arg_type_ok(kind: str, value: Any) -> bool:
    """Whether ``value`` is of a block argument's declared ``type`` (int, float, bool, str, list)."""
    match kind:
        case "int":
            return isinstance(value, int) and not isinstance(value, bool)
        case "float":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "bool":
            return isinstance(value, bool)
        case "str":
            return isinstance(value, str)
        case "list":
            return isinstance(value, list)
    return True
