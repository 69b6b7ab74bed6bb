"""A small, safe evaluator for ``${...}`` expressions in specs.

Only arithmetic over numbers and names from the spec (arguments, dims) is allowed:
``+ - * / // % **``, parentheses, comparisons, ``a if c else b`` and the functions
``min max abs int float round``. Python's ``eval`` is never used.

Example:
  >>> evaluate("${d_model * 4}", {"d_model": 768})
  3072
  >>> evaluate("h${i}", {"i": 2})
  'h2'
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["ExprError", "evaluate", "has_expr", "substitute"]

_EXPR = re.compile(r"\$\{([^{}]*)\}")
_MAX_LEN = 500
_MAX_MAGNITUDE = 10**30

_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_CMPOPS = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_FUNCS = {"min": min, "max": max, "abs": abs, "int": int, "float": float, "round": round}


class ExprError(ValueError):
    """An expression that cannot be evaluated; the message says why."""


def has_expr(value: Any) -> bool:
    return isinstance(value, str) and "${" in value


def evaluate(text: str, names: Mapping[str, Any]) -> Any:
    """Evaluates ``text``: a whole ``${...}`` gives its value, otherwise a string."""
    if len(text) > _MAX_LEN:
        raise ExprError(f"expression longer than {_MAX_LEN} characters")
    whole = _EXPR.fullmatch(text.strip())
    if whole:
        return _eval_source(whole.group(1), names)
    if "${" in text and not _EXPR.search(text):
        raise ExprError(f"unclosed '${{' in {text!r}")
    return _EXPR.sub(lambda m: str(_eval_source(m.group(1), names)), text)


def substitute(value: Any, names: Mapping[str, Any]) -> Any:
    """Evaluates every expression inside nested lists and dicts."""
    if isinstance(value, str):
        return evaluate(value, names) if "${" in value else value
    if isinstance(value, list):
        return [substitute(v, names) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, names) for k, v in value.items()}
    return value


def _eval_source(source: str, names: Mapping[str, Any]) -> Any:
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as e:
        raise ExprError(f"invalid expression '{source.strip()}': {e.msg}") from None
    return _Evaluator(names).visit(tree.body)


class _Evaluator(ast.NodeVisitor):
    def __init__(self, names: Mapping[str, Any]):
        self.names = names

    def generic_visit(self, node: ast.AST) -> Any:
        raise ExprError(f"'{type(node).__name__}' is not allowed in expressions")

    def visit_Constant(self, node: ast.Constant) -> Any:
        if isinstance(node.value, bool | int | float | str):
            return node.value
        raise ExprError(f"constant {node.value!r} is not allowed")

    def visit_Name(self, node: ast.Name) -> Any:
        if node.id in self.names:
            return self.names[node.id]
        from .errors import did_you_mean

        hint = did_you_mean(node.id, list(self.names))
        raise ExprError(f"unknown name '{node.id}' in expression{hint}")

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        v = self._num(self.visit(node.operand))
        if isinstance(node.op, ast.USub):
            return -v
        if isinstance(node.op, ast.UAdd):
            return +v
        if isinstance(node.op, ast.Not):
            return not v
        raise ExprError(f"operator '{type(node.op).__name__}' is not allowed")

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise ExprError(f"operator '{type(node.op).__name__}' is not allowed")
        a, b = self._num(self.visit(node.left)), self._num(self.visit(node.right))
        if op is operator.pow and (abs(b) > 128 or abs(a) > _MAX_MAGNITUDE):
            raise ExprError(f"power {a} ** {b} is too large")
        try:
            out = op(a, b)
        except ZeroDivisionError:
            raise ExprError("division by zero") from None
        except OverflowError:
            raise ExprError("result too large") from None
        return self._result(out)

    def visit_Compare(self, node: ast.Compare) -> Any:
        left = self.visit(node.left)
        for op_node, right_node in zip(node.ops, node.comparators, strict=True):
            op = _CMPOPS.get(type(op_node))
            if op is None:
                raise ExprError(f"comparison '{type(op_node).__name__}' is not allowed")
            right = self.visit(right_node)
            if not op(left, right):
                return False
            left = right
        return True

    def visit_BoolOp(self, node: ast.BoolOp) -> Any:
        values = [self.visit(v) for v in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)

    def visit_IfExp(self, node: ast.IfExp) -> Any:
        return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)

    def visit_Call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCS or node.keywords:
            raise ExprError(f"only the functions {', '.join(_FUNCS)} may be called")
        args = [self._num(self.visit(a)) for a in node.args]
        try:
            return self._result(_FUNCS[node.func.id](*args))
        except (TypeError, ValueError, OverflowError) as e:
            raise ExprError(f"{node.func.id}(): {e}") from None

    @staticmethod
    def _result(out: Any) -> Any:
        if isinstance(out, complex):
            raise ExprError(f"result {out!r} is not a real number")
        if isinstance(out, float) and not math.isfinite(out):
            raise ExprError(f"result {out!r} is not finite")
        if isinstance(out, int) and abs(out) > _MAX_MAGNITUDE:
            raise ExprError("result too large")
        return out

    @staticmethod
    def _num(v: Any) -> Any:
        if isinstance(v, bool | int | float):
            return v
        raise ExprError(f"expected a number, received {v!r}")
