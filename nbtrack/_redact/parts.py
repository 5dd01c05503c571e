"""What to hide of a value that is a secret (``syntax`` says which values are): the whole
value, except what it reads from elsewhere, and the text each hidden node held.

Reading a secret from elsewhere stays readable: a name, an attribute, ``os.environ[...]``, and
the first argument of a call that reads one (``os.getenv("HF_TOKEN")``, ``getpass("Password:
")``). Every other string or bytes constant in such a value is hidden, also one a method is
called on (``"...".strip()``) or a lambda returns.
"""

from __future__ import annotations

import ast
import re

__all__ = ["callee", "secret_parts", "values_of"]

# Calls whose first argument names where a secret is read from, not the secret itself.
_READER = re.compile(r"(?i)get|input|prompt|read|load|env|fetch|lookup")


def secret_parts(value: ast.expr) -> list[ast.expr]:
    """The nodes of ``value`` to hide: nothing for a value read from elsewhere, the string
    constants of a call, the whole value otherwise."""
    if isinstance(value, ast.Await):
        value = value.value
    if isinstance(value, ast.Lambda):  # code, not a secret: only what it returns may be one
        value = value.body
    if isinstance(value, ast.Constant):
        return [] if value.value is None or isinstance(value.value, bool) else [value]
    if isinstance(value, ast.Name | ast.Attribute):
        return []
    if isinstance(value, ast.Subscript):  # os.environ["X"], secrets["api"]
        return secret_parts(value.value) if _is_literal(value.value) else []
    if isinstance(value, ast.Call):
        return _call_parts(value)
    return [value]


def _call_parts(call: ast.Call) -> list[ast.expr]:
    arguments = [*call.args, *(k.value for k in call.keywords)]
    if call.args and _READER.search(callee(call)) and isinstance(call.args[0], ast.Constant):
        arguments = arguments[1:]  # os.getenv("HF_TOKEN"), getpass("Password: ")
    parts = []
    if isinstance(call.func, ast.Call):
        parts = secret_parts(call.func)
    elif isinstance(call.func, ast.Attribute) and not _READER.search(call.func.attr):
        # A method of the value itself ("...".strip(), "...".encode()); not of what a reader
        # call returns (Path("token.txt").read_text()).
        parts = secret_parts(call.func.value)
    for argument in arguments:
        if isinstance(argument, ast.Constant):
            if isinstance(argument.value, str | bytes):
                parts.append(argument)
        else:
            parts.extend(secret_parts(argument))
    return parts


def _is_literal(node: ast.expr) -> bool:
    return isinstance(
        node, ast.Constant | ast.List | ast.Tuple | ast.Dict | ast.Set | ast.JoinedStr
    )


def callee(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def values_of(node: ast.AST) -> set[str]:
    """The text a hidden node held: what to look for again in tracebacks and messages
    (values only: a dict's keys are not secrets)."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str):
            return {node.value}
        if isinstance(node.value, bytes):
            return {node.value.decode("utf-8", "replace")}
        if isinstance(node.value, int | float) and not isinstance(node.value, bool):
            return {str(node.value)}
        return set()
    if isinstance(node, ast.Dict):
        return {v for item in node.values for v in values_of(item)}
    found: set[str] = set()
    for child in ast.iter_child_nodes(node):
        found |= values_of(child)
    return found
