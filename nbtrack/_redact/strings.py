"""The text inside code: where a syntax tree's nodes are in it, the edits that hide secrets
there, and the strings, shell commands, magics and comments whose text holds a secret by the
text rules (``text.text_secrets``). ``syntax`` adds the values that are secrets by where they
stand (under a credential's name).
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from nbtrack._redact.text import REDACTED, redact_shapes, text_secrets

__all__ = [
    "CommandSecrets",
    "Edit",
    "Positions",
    "command_strings",
    "comment_edits",
    "scrub_code_text",
    "strings_with_secrets",
]

# IPython's translations of its syntax: get_ipython().<kind>(<string arguments>).
_IPYTHON_CALLS = frozenset({"system", "getoutput", "run_line_magic", "run_cell_magic"})

# Secrets in the string arguments of one of IPython's calls: (kind, arguments) -> values.
CommandSecrets = Callable[[str, list[str]], set[str]]


@dataclass(frozen=True)
class Edit:
    """Replace ``text[start:end]`` with ``replacement``; ``values`` are the secrets it hides."""

    start: int
    end: int
    replacement: str
    values: frozenset[str]

    def shifted(self, by: int) -> Edit:
        return Edit(self.start + by, self.end + by, self.replacement, self.values)


class Positions:
    """AST positions (line, UTF-8 byte column) as character offsets into the text."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines(keepends=True) or [""]
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, line: int, column: int) -> int:
        text = self.lines[line - 1] if line - 1 < len(self.lines) else ""
        return self.starts[line - 1] + len(text.encode("utf-8")[:column].decode("utf-8", "ignore"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        start = self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        end_line = getattr(node, "end_lineno", None) or node.lineno  # type: ignore[attr-defined]
        end_col = getattr(node, "end_col_offset", None)
        end = self.offset(end_line, end_col if end_col is not None else node.col_offset)  # type: ignore[attr-defined]
        return start, end


def strings_with_secrets(
    nodes: list[ast.AST], hidden: set[int], command_secrets: CommandSecrets
) -> Iterator[tuple[ast.expr, set[str]]]:
    handled: set[int] = set(hidden)
    for argument, inside in command_strings(nodes, command_secrets):
        handled.add(id(argument))
        if inside and id(argument) not in hidden:
            yield argument, inside
    for node in nodes:
        if id(node) in handled:
            continue
        if isinstance(node, ast.JoinedStr):
            handled.update(id(child) for child in ast.walk(node))
            parts = [v.value for v in node.values if isinstance(v, ast.Constant)]
            secrets = {x for part in parts if isinstance(part, str) for x in text_secrets(part)}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            secrets = set(text_secrets(node.value))
        elif isinstance(node, ast.Constant) and isinstance(node.value, bytes):
            secrets = set(text_secrets(node.value.decode("utf-8", "replace")))
        else:
            continue
        if secrets:
            yield node, secrets


def command_strings(
    nodes: list[ast.AST], command_secrets: CommandSecrets
) -> Iterator[tuple[ast.Constant, set[str]]]:
    """Each string argument of IPython's calls (shell commands, magics), with the secrets
    ``command_secrets`` finds in it."""
    for node in nodes:
        kind = _ipython_call(node)
        if kind is None:
            continue
        assert isinstance(node, ast.Call)  # noqa: S101 - _ipython_call checked it
        strings = [
            (a, a.value)
            for a in node.args
            if isinstance(a, ast.Constant) and isinstance(a.value, str)
        ]
        secrets = command_secrets(kind, [value for _, value in strings])
        for argument, value in strings:
            yield argument, {s for s in secrets if s and s in value}


def _ipython_call(node: ast.AST) -> str | None:
    """``system`` for ``get_ipython().system(...)`` and its kin, else None."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return None
    owner = node.func.value
    if (
        node.func.attr in _IPYTHON_CALLS
        and isinstance(owner, ast.Call)
        and isinstance(owner.func, ast.Name)
        and owner.func.id == "get_ipython"
    ):
        return node.func.attr
    return None


def comment_edits(text: str, positions: Positions) -> list[Edit]:
    # Tokenizing costs more than the rest; a cell whose text after each `#` holds nothing the
    # text rules match has no comment to redact.
    if not any(text_secrets(line[line.index("#") :]) for line in text.split("\n") if "#" in line):
        return []
    edits = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type != tokenize.COMMENT:
                continue
            secrets = text_secrets(token.string)
            if secrets:
                start = positions.starts[token.start[0] - 1] + token.start[1]
                replacement = token.string
                for secret in secrets:
                    replacement = replacement.replace(secret, REDACTED)
                edits.append(
                    Edit(start, start + len(token.string), replacement, frozenset(secrets))
                )
    except (tokenize.TokenError, SyntaxError):
        pass
    return edits


def scrub_code_text(text: str) -> str:
    """The rules safe to run over code as plain text: token shapes, URL passwords, ``Bearer``."""
    return redact_shapes(text)
