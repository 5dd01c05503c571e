"""A trial's code: the cell with each swept name's literal assignment given the trial's value.

The values replace the literals on the syntax tree, where ``%%track`` finds a cell's params
(``nbtrack.kernel.params``): ``lr = 1e-3`` becomes ``lr = 0.003`` for a trial that tries
3e-3, and the trial's run records ``lr`` as its param like any tracked cell. Only the literal's
own characters change, so comments, IPython syntax and line numbers (in tracebacks) stay as
the user wrote them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from typing import Any

from nbtrack.kernel.params import capture_params

__all__ = ["check_swept_names", "substitute"]


def check_swept_names(python: str, names: Iterable[str]) -> None:
    """Raise ValueError, saying how to fix the cell, for a swept name that the cell (Python,
    IPython syntax already transformed) does not bind once, at its top level, to a literal."""
    params = capture_params(python)
    for name in names:
        if name not in params:
            msg = (
                f"--sweep {name}: the cell has no assignment of {name} to a literal to replace "
                f"(e.g. `{name} = ...` on a line of its own, assigned once, at the top level; a "
                "name set in an earlier cell must be assigned in this cell to be swept)"
            )
            raise ValueError(msg)
        _value_node(ast.parse(python), name)


def substitute(body: str, python: str, values: Mapping[str, Any]) -> str:
    """``body`` (the cell as written) with each name's literal replaced by ``repr`` of its value.

    ``python`` is ``body`` through IPython's input transformers, whose syntax tree locates the
    literals. Where the lines of a literal read the same in both (they do, unless the literal
    shares a line with IPython syntax), ``body`` is changed, else ``python``.
    """
    tree = ast.parse(python)
    spans = sorted(
        ((_span(_value_node(tree, name)), repr(value)) for name, value in values.items()),
        reverse=True,
    )
    python_lines = python.splitlines(keepends=True)
    body_lines = body.splitlines(keepends=True)
    same = all(_rows(body_lines, span) == _rows(python_lines, span) for span, _ in spans)
    lines = body_lines if same else python_lines
    for span, text in spans:  # from the end, so earlier spans keep their offsets
        lines = _replace(lines, span, text)
    return "".join(lines)


def _value_node(tree: ast.Module, name: str) -> ast.expr:
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            found = _match(node.target, node.value, name)
        elif isinstance(node, ast.Assign):
            found = None
            for target in node.targets:
                found = found or _match(target, node.value, name)
            if found is not None and len(node.targets) > 1:
                msg = (
                    f"--sweep {name}: {name} is assigned together with other names "
                    f"(`{name} = other = ...`); give it an assignment of its own"
                )
                raise ValueError(msg)
        else:
            continue
        if found is not None:
            return found
    msg = f"--sweep {name}: no top-level assignment of {name} to a literal in the cell"
    raise ValueError(msg)


def _match(target: ast.expr, value: ast.expr, name: str) -> ast.expr | None:
    if isinstance(target, ast.Name):
        return value if target.id == name else None
    if isinstance(target, ast.Tuple | ast.List) and isinstance(value, ast.Tuple | ast.List):
        for sub_target, sub_value in zip(target.elts, value.elts, strict=False):
            found = _match(sub_target, sub_value, name)
            if found is not None:
                return found
    return None


_Span = tuple[int, int, int, int]  # first line (0-based), byte column, last line, byte column


def _span(node: ast.expr) -> _Span:
    end_line = node.end_lineno if node.end_lineno is not None else node.lineno
    end_col = node.end_col_offset if node.end_col_offset is not None else node.col_offset
    return node.lineno - 1, node.col_offset, end_line - 1, end_col


def _rows(lines: list[str], span: _Span) -> list[str] | None:
    first, _, last, _ = span
    return lines[first : last + 1] if last < len(lines) else None


def _replace(lines: list[str], span: _Span, text: str) -> list[str]:
    first, start, last, end = span
    # The syntax tree counts columns in UTF-8 bytes.
    head = lines[first].encode()[:start].decode()
    tail = lines[last].encode()[end:].decode()
    return [*lines[:first], head + text + tail, *lines[last + 1 :]]
