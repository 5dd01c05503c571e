"""Which parts of a syntax tree are secrets: the rules for code, as edits on its text.

A value is a secret when it is assigned to, passed as, compared with or stored under a
credential's name (``names.is_secret_name``):

- assignments, annotated, augmented and ``:=`` assignments to such a name, attribute,
  subscript (``os.environ["HF_TOKEN"] = ...``) or tuple of targets;
- keyword arguments (``login(token=...)``, ``dict(api_key=...)``) and default arguments of
  functions (``def connect(token="...")``);
- dict entries at any depth (``{"auth": {"password": ...}}``), and ``case`` patterns of
  either (``match password: case "..."``, ``case {"token": "..."}``);
- the argument after a string that names a credential (``os.environ.setdefault(
  "GITHUB_TOKEN", ...)``, ``os.putenv("HF_TOKEN", ...)``, ``set_key(".env", "API_KEY", ...)``),
  and the item after one in a pair (``[("api_key", ...)]``) or after an option naming one in
  an argument list (``subprocess.run(["cli", "--token", ...])``);
- constants compared with such a name (``if password == "..."``, ``if token in ("...",)``);
- what the cell assigns to a variable it then uses as one of the above (``tok = "..."`` then
  ``login(token=tok)``): ``credential_variables``.

Reading a secret from elsewhere stays readable: a name, an attribute, ``os.environ[...]``, and
the first argument of a call that reads one (``os.getenv("HF_TOKEN")``, ``getpass("Password:
")``). Every other string or bytes constant in such a value is redacted, also one a method is
called on (``"...".strip()``) or a lambda returns. Strings and comments
anywhere are also checked by the text rules (``strings``: token shapes, URL passwords,
``Bearer``, ``NAME=value``), and the arguments of IPython's own calls (shell commands, magics)
by the caller's ``command_secrets``.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Callable, Iterator
from typing import Any

from nbtrack._redact.names import is_secret_name
from nbtrack._redact.strings import (
    CommandSecrets,
    Edit,
    Positions,
    comment_edits,
    strings_with_secrets,
)
from nbtrack._redact.text import REDACTED

__all__ = ["credential_variables", "find_edits"]

# Calls whose first argument names where a secret is read from, not the secret itself.
_READER = re.compile(r"(?i)get|input|prompt|read|load|env|fetch|lookup")


def find_edits(tree: ast.AST, text: str, command_secrets: CommandSecrets) -> list[Edit]:
    """The edits that hide every secret of ``tree`` (parsed from ``text``)."""
    positions = Positions(text)
    nodes = list(ast.walk(tree))
    edits: list[Edit] = []
    hidden: set[int] = set()
    for value in _secret_values(nodes):
        for node in _secret_parts(value):
            start, end = positions.span(node)
            edits.append(Edit(start, end, repr(REDACTED), frozenset(_values_of(node))))
            hidden.update(id(child) for child in ast.walk(node))
    for node, secrets in strings_with_secrets(nodes, hidden, command_secrets):
        start, end = positions.span(node)
        segment = text[start:end]
        replacement = segment
        for secret in sorted(secrets, key=len, reverse=True):
            if secret not in replacement:
                replacement = repr(REDACTED)  # written with escapes: hide the whole string
                break
            replacement = replacement.replace(secret, REDACTED)
        edits.append(Edit(start, end, replacement, frozenset(secrets)))
    edits.extend(comment_edits(text, positions))
    return edits


# ------------------------------------------------------------------ values under secret names


def _secret_values(nodes: list[ast.AST]) -> list[ast.expr]:
    values = [value for node in nodes for value in _RULES.get(type(node), _none)(node)]
    variables = _variables_in(values)
    if variables:
        values.extend(_assigned_to(nodes, _credential_variables(nodes, variables)))
    return values


def _none(node: ast.AST) -> Iterator[ast.expr]:  # noqa: ARG001 - a node no rule applies to
    yield from ()


def credential_variables(tree: ast.AST) -> set[str]:
    """Variables ``tree`` uses as credentials without naming them so (``tok = "..."`` then
    ``login(token=tok)``): never params, and what the cell assigns to them is redacted."""
    nodes = list(ast.walk(tree))
    values = [value for node in nodes for value in _RULES.get(type(node), _none)(node)]
    return _credential_variables(nodes, _variables_in(values))


def _variables_in(values: list[ast.expr]) -> set[str]:
    """Variables whose value a secret value is made of: the value itself, or the items,
    f-string parts and ``+`` operands it is built from (not attributes, calls, subscripts)."""
    found: set[str] = set()
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, ast.Name):
            found.add(value.id)
        elif isinstance(value, ast.Tuple | ast.List | ast.Set):
            stack.extend(value.elts)
        elif isinstance(value, ast.JoinedStr):
            stack.extend(v.value for v in value.values if isinstance(v, ast.FormattedValue))
        elif isinstance(value, ast.BinOp):
            stack.extend((value.left, value.right))
    return found


def _credential_variables(nodes: list[ast.AST], variables: set[str]) -> set[str]:
    """``variables``, and the variables assigned to them in turn (``a = "..."; b = a``)."""
    found = set(variables)
    while True:
        more = _variables_in(list(_assigned_to(nodes, found))) - found
        if not more:
            return found
        found |= more


def _assigned_to(nodes: list[ast.AST], variables: set[str]) -> Iterator[ast.expr]:
    for node in nodes:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.NamedExpr) and node.value is not None:
            targets = [node.target]
        else:
            continue
        if any(_names_a(target, variables) for target in targets):
            yield node.value  # type: ignore[misc]


def _names_a(target: ast.expr, variables: set[str]) -> bool:
    if isinstance(target, ast.Name):
        return target.id in variables
    if isinstance(target, ast.Tuple | ast.List | ast.Starred):
        elements = target.elts if not isinstance(target, ast.Starred) else [target.value]
        return any(_names_a(element, variables) for element in elements)
    return False


def _assigned(node: ast.Assign) -> Iterator[ast.expr]:
    if any(_is_secret_target(t) for t in node.targets):
        yield node.value


def _assigned_one(node: ast.AnnAssign | ast.AugAssign | ast.NamedExpr) -> Iterator[ast.expr]:
    if node.value is not None and _is_secret_target(node.target):
        yield node.value


def _keyword(node: ast.keyword) -> Iterator[ast.expr]:
    if node.arg is not None and is_secret_name(node.arg):
        yield node.value


def _dict_entries(node: ast.Dict) -> Iterator[ast.expr]:
    yield from (v for k, v in zip(node.keys, node.values, strict=True) if _is_secret_string(k))


def _after_a_named_argument(node: ast.Call) -> Iterator[ast.expr]:
    yield from _after_a_name(node.args)


def _after_a_named_item(node: ast.List | ast.Tuple) -> Iterator[ast.expr]:
    # An argument list (["cli", "--token", ...]) or a pair (("api_key", ...)); not a list of
    # column names that happens to hold "password_hash".
    if len(node.elts) == 2:
        yield from _after_a_name(node.elts)
    else:
        yield from (
            v
            for k, v in itertools.pairwise(node.elts)
            if _is_secret_string(k) and isinstance(k, ast.Constant) and str(k.value)[:1] == "-"
        )


def _after_a_name(items: list[ast.expr]) -> Iterator[ast.expr]:
    yield from (v for k, v in itertools.pairwise(items) if _is_secret_string(k))


def _compared(node: ast.Compare) -> Iterator[ast.expr]:
    operands = [node.left, *node.comparators]
    if any(_is_secret_target(o) for o in operands):
        for operand in operands:
            if isinstance(operand, ast.Constant):
                yield operand
            elif isinstance(operand, ast.Tuple | ast.List | ast.Set):  # `token in ("...",)`
                yield from (e for e in operand.elts if isinstance(e, ast.Constant))


def _matched(node: ast.Match) -> Iterator[ast.expr]:
    if _is_secret_target(node.subject):
        for case in node.cases:
            yield from _pattern_values(case.pattern)


def _matched_entries(node: ast.MatchMapping) -> Iterator[ast.expr]:
    for key, pattern in zip(node.keys, node.patterns, strict=True):
        if _is_secret_string(key):
            yield from _pattern_values(pattern)


def _pattern_values(pattern: ast.pattern) -> Iterator[ast.expr]:
    yield from (node.value for node in ast.walk(pattern) if isinstance(node, ast.MatchValue))


def _secret_defaults(arguments: ast.arguments) -> Iterator[ast.expr]:
    positional = [*arguments.posonlyargs, *arguments.args]
    with_defaults = positional[len(positional) - len(arguments.defaults) :]
    for arg, default in zip(with_defaults, arguments.defaults, strict=True):
        if is_secret_name(arg.arg):
            yield default
    for arg, maybe in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True):
        if maybe is not None and is_secret_name(arg.arg):
            yield maybe


_RULES: dict[type[ast.AST], Callable[[Any], Iterator[ast.expr]]] = {
    ast.Assign: _assigned,
    ast.AnnAssign: _assigned_one,
    ast.AugAssign: _assigned_one,
    ast.NamedExpr: _assigned_one,
    ast.keyword: _keyword,
    ast.Dict: _dict_entries,
    ast.Call: _after_a_named_argument,
    ast.List: _after_a_named_item,
    ast.Tuple: _after_a_named_item,
    ast.Compare: _compared,
    ast.Match: _matched,
    ast.MatchMapping: _matched_entries,
    ast.arguments: _secret_defaults,
}


def _is_secret_string(node: ast.expr | None) -> bool:
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and is_secret_name(node.value)
    )


def _is_secret_target(target: ast.expr) -> bool:
    if isinstance(target, ast.Name):
        return is_secret_name(target.id)
    if isinstance(target, ast.Attribute):
        return is_secret_name(target.attr)
    if isinstance(target, ast.Subscript):
        return _is_secret_string(target.slice)
    if isinstance(target, ast.Tuple | ast.List | ast.Starred):
        elements = target.elts if not isinstance(target, ast.Starred) else [target.value]
        return any(_is_secret_target(element) for element in elements)
    return False


def _secret_parts(value: ast.expr) -> list[ast.expr]:
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
        return _secret_parts(value.value) if _is_literal(value.value) else []
    if isinstance(value, ast.Call):
        return _call_parts(value)
    return [value]


def _call_parts(call: ast.Call) -> list[ast.expr]:
    arguments = [*call.args, *(k.value for k in call.keywords)]
    if call.args and _READER.search(_callee(call)) and isinstance(call.args[0], ast.Constant):
        arguments = arguments[1:]  # os.getenv("HF_TOKEN"), getpass("Password: ")
    parts = []
    if isinstance(call.func, ast.Call):
        parts = _secret_parts(call.func)
    elif isinstance(call.func, ast.Attribute) and not _READER.search(call.func.attr):
        # A method of the value itself ("...".strip(), "...".encode()); not of what a reader
        # call returns (Path("token.txt").read_text()).
        parts = _secret_parts(call.func.value)
    for argument in arguments:
        if isinstance(argument, ast.Constant):
            if isinstance(argument.value, str | bytes):
                parts.append(argument)
        else:
            parts.extend(_secret_parts(argument))
    return parts


def _is_literal(node: ast.expr) -> bool:
    return isinstance(
        node, ast.Constant | ast.List | ast.Tuple | ast.Dict | ast.Set | ast.JoinedStr
    )


def _callee(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _values_of(node: ast.AST) -> set[str]:
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
        return {v for item in node.values for v in _values_of(item)}
    found: set[str] = set()
    for child in ast.iter_child_nodes(node):
        found |= _values_of(child)
    return found
