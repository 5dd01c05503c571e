"""Which parts of a syntax tree are secrets: the rules for code, as edits on its text.

A value is a secret when it is assigned to, passed as, compared with or stored under a
credential's name (``names.is_secret_name``):

- assignments, annotated, augmented and ``:=`` assignments to such a name, attribute,
  subscript (``os.environ["HF_TOKEN"] = ...``, ``secrets["hf"] = ...``) or tuple of targets,
  and what a credential-named container is given (``creds.append(...)``,
  ``secrets.update(...)``);
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
  ``login(token=tok)``, ``login(token=tok.strip())``, ``os.getenv("T") or tok``), in a shell
  command or a magic (``!curl -H "Authorization: Bearer $tok"``, ``%env HF_TOKEN=$hf``), or
  assigns in the same statement as a credential (``os.environ["HF_TOKEN"] = hf = "..."``):
  ``credential_variables``.

What of such a value is hidden is ``parts``' business (what it reads from elsewhere stays
readable: ``os.getenv("HF_TOKEN")``). Strings and comments anywhere are also checked by the
text rules (``strings``: token shapes, URL passwords,
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
from nbtrack._redact.parts import callee, secret_parts, values_of
from nbtrack._redact.strings import (
    CommandSecrets,
    Edit,
    Positions,
    command_strings,
    comment_edits,
    strings_with_secrets,
)
from nbtrack._redact.text import REDACTED

__all__ = ["credential_variables", "find_edits"]

# Calls that make text of a variable: a method of the text itself (``tok.strip()``), and
# functions and methods whose arguments the text is made of (``str(tok)``,
# ``"Token {}".format(tok)``, ``":".join([user, pw])``). Other calls are not followed: a value
# computed from a variable (``jax.random.PRNGKey(seed)`` under ``key``) does not make the
# variable a credential.
_TEXT_METHODS = frozenset(
    {"strip", "lstrip", "rstrip", "encode", "decode", "lower", "upper", "replace",
     "removeprefix", "removesuffix", "format", "join"}
)  # fmt: skip
_TEXT_FUNCTIONS = frozenset(
    {"str", "bytes", "format", "join", "replace", "b64encode", "urlsafe_b64encode", "quote",
     "quote_plus"}
)  # fmt: skip
# Methods that put what they are given into their container (``creds.append("...")``).
_STORES = frozenset({"append", "extend", "insert", "add", "update", "setdefault"})
# IPython's expansions in a shell command or a magic: $name, ${name} and {expression}.
_EXPANDED = re.compile(r"\$\{?([A-Za-z_]\w*)|\{([^{}]+)\}")


def find_edits(tree: ast.AST, text: str, command_secrets: CommandSecrets) -> list[Edit]:
    """The edits that hide every secret of ``tree`` (parsed from ``text``)."""
    positions = Positions(text)
    nodes = list(ast.walk(tree))
    edits: list[Edit] = []
    hidden: set[int] = set()
    for value in _secret_values(nodes, command_secrets):
        for node in secret_parts(value):
            start, end = positions.span(node)
            edits.append(Edit(start, end, repr(REDACTED), frozenset(values_of(node))))
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


def _secret_values(nodes: list[ast.AST], command_secrets: CommandSecrets) -> list[ast.expr]:
    values = [value for node in nodes for value in _RULES.get(type(node), _none)(node)]
    variables = _used_as_credentials(nodes, values, command_secrets)
    if variables:
        values.extend(_assigned_to(nodes, variables))
    return values


def _none(node: ast.AST) -> Iterator[ast.expr]:  # noqa: ARG001 - a node no rule applies to
    yield from ()


def credential_variables(tree: ast.AST, command_secrets: CommandSecrets) -> set[str]:
    """Variables ``tree`` uses as credentials without naming them so (``tok = "..."`` then
    ``login(token=tok)``): never params, and what the cell assigns to them is redacted."""
    nodes = list(ast.walk(tree))
    values = [value for node in nodes for value in _RULES.get(type(node), _none)(node)]
    return _used_as_credentials(nodes, values, command_secrets)


def _used_as_credentials(
    nodes: list[ast.AST], values: list[ast.expr], command_secrets: CommandSecrets
) -> set[str]:
    """The variables secret ``values`` are made of, those a shell command or a magic expands
    where a secret stands, those assigned together with a credential, and the variables
    assigned to any of them in turn. A value passed as a credential (a keyword argument, a
    dict entry, the argument after a credential's name, ``os.environ[...]``) is followed
    through text calls and alternatives (``login(token=tok.strip())``); one merely assigned
    to a name with a token or key part is not (``next_token = tokenizer.decode(...)``,
    ``cache_key = "_".join(...)``: ordinary code, whose names stay params)."""
    passed = [value for node in nodes for value in _PASSED.get(type(node), _none)(node)]
    variables = _variables_in(values) | _variables_in(passed, passed=True)
    variables |= _assigned_with_a_credential(nodes)
    for _, secrets in command_strings(nodes, command_secrets):
        for secret in secrets:
            variables |= _expanded_variables(secret)
    return _credential_variables(nodes, variables) if variables else set()


def _variables_in(values: list[ast.expr], *, passed: bool = False) -> set[str]:
    """Variables whose value a secret value is made of: the value itself, or the items,
    f-string parts and ``+`` operands it is built from; for a value ``passed`` as a credential
    also the alternatives (``or``, ``if``/``else``), text calls (``_TEXT_METHODS``,
    ``_TEXT_FUNCTIONS``) and items read from it (not attributes, other calls, or an item read
    under a credential's name)."""
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
        elif not passed:
            continue
        elif isinstance(value, ast.BoolOp):
            stack.extend(value.values)
        elif isinstance(value, ast.IfExp):
            stack.extend((value.body, value.orelse))
        elif isinstance(value, ast.Starred | ast.Await | ast.NamedExpr):
            stack.append(value.value)
        elif isinstance(value, ast.Subscript) and not _is_secret_string(value.slice):
            stack.append(value.value)  # tokens[0], [tok][0]; not cfg["token"]
        elif isinstance(value, ast.Call):
            stack.extend(_text_parts(value))
    return found


def _text_parts(call: ast.Call) -> list[ast.expr]:
    """What a call that makes text of its input is made of (see ``_TEXT_METHODS``)."""
    func, arguments = call.func, [*call.args, *(k.value for k in call.keywords)]
    parts: list[ast.expr] = []
    if isinstance(func, ast.Attribute) and func.attr in _TEXT_METHODS:
        parts.append(func.value)
    if callee(call) in _TEXT_FUNCTIONS:
        parts.extend(arguments)
    return parts


def _assigned_with_a_credential(nodes: list[ast.AST]) -> set[str]:
    """Variables assigned in the same statement as a credential (``os.environ["HF_TOKEN"] =
    hf = "..."``): they hold the same secret."""
    found: set[str] = set()
    for node in nodes:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) > 1
            and any(_is_secret_target(t) for t in node.targets)
        ):
            found |= _variables_in([t for t in node.targets if isinstance(t, ast.Name)])
    return found


def _expanded_variables(text: str) -> set[str]:
    """The variables IPython expands in ``text`` (``$tok``, ``{tok.strip()}``)."""
    found: set[str] = set()
    for name, expression in _EXPANDED.findall(text):
        if name:
            found.add(name)
            continue
        try:
            tree = ast.parse(expression.strip(), mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        found |= _variables_in([tree.body], passed=True)
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


def _called(node: ast.Call) -> Iterator[ast.expr]:
    yield from _after_a_name(node.args)
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr in _STORES and _is_secret_target(func.value):
        # creds.append("..."), secrets.update(hf="..."): what is written there, not a
        # variable's name (key_list.append(name) is ordinary code)
        given = [*node.args, *(k.value for k in node.keywords)]
        yield from (v for v in given if isinstance(v, ast.Constant | ast.JoinedStr))


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
    ast.Call: _called,
    ast.List: _after_a_named_item,
    ast.Tuple: _after_a_named_item,
    ast.Compare: _compared,
    ast.Match: _matched,
    ast.MatchMapping: _matched_entries,
    ast.arguments: _secret_defaults,
}


def _assigned_to_a_named_item(node: ast.Assign) -> Iterator[ast.expr]:
    """``os.environ["HF_TOKEN"] = ...``: a value stored under a credential's name."""
    if any(isinstance(t, ast.Subscript) and _is_secret_string(t.slice) for t in node.targets):
        yield node.value


# Where a value is passed or stored as a credential, rather than assigned to a name that looks
# like one: followed further by _variables_in.
_PASSED: dict[type[ast.AST], Callable[[Any], Iterator[ast.expr]]] = {
    ast.keyword: _keyword,
    ast.Dict: _dict_entries,
    ast.Call: lambda node: _after_a_name(node.args),
    ast.List: _after_a_named_item,
    ast.Tuple: _after_a_named_item,
    ast.Assign: _assigned_to_a_named_item,
}


def _is_secret_string(node: ast.expr | None) -> bool:
    if not isinstance(node, ast.Constant):
        return False
    value = node.value
    if isinstance(value, bytes):  # {b"Authorization": ...}
        value = value.decode("utf-8", "replace")
    return isinstance(value, str) and is_secret_name(value)


def _is_secret_target(target: ast.expr) -> bool:
    if isinstance(target, ast.Name):
        return is_secret_name(target.id)
    if isinstance(target, ast.Attribute):
        return is_secret_name(target.attr)
    if isinstance(target, ast.Subscript):  # os.environ["HF_TOKEN"], secrets["hf"]
        return _is_secret_string(target.slice) or _is_secret_target(target.value)
    if isinstance(target, ast.Tuple | ast.List | ast.Starred):
        elements = target.elts if not isinstance(target, ast.Starred) else [target.value]
        return any(_is_secret_target(element) for element in elements)
    return False
