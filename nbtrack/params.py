"""Parameters of a cell, read from its source: literal top-level assignments.

``lr = 3e-3`` at the top level of a tracked cell is a parameter; ``lr = schedule(3e-3)`` or an
assignment inside a loop is not. Nothing is executed: the values come from the syntax tree,
so capture costs a parse and can never run user code twice.
"""

from __future__ import annotations

import ast
from typing import Any

from nbtrack.secrets import is_secret_name

# The first line papermill writes into the cell it injects.
PAPERMILL_HEADER = "# Parameters"


def capture_params(source: str) -> dict[str, Any]:
    """Literal values assigned at the top level of ``source`` (Python, IPython syntax removed).

    Numbers (``1e-3``, ``-1``), strings, booleans, None and tuples/lists/dicts/sets of literals
    are kept; names that look like credentials are skipped. A name assigned twice keeps its
    last literal value; one reassigned to a computed value is not a parameter. Source that
    does not parse yields no params (the cell will fail on its own, with Python's message).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    params: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                _collect(target, node.value, params)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            _collect(node.target, node.value, params)
    return params


def _collect(target: ast.expr, value: ast.expr, params: dict[str, Any]) -> None:
    if isinstance(target, ast.Name):
        if is_secret_name(target.id):
            return
        try:
            params[target.id] = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            params.pop(target.id, None)  # reassigned to something computed: no longer a param
    elif (
        isinstance(target, ast.Tuple | ast.List)
        and isinstance(value, ast.Tuple | ast.List)
        and len(target.elts) == len(value.elts)
    ):
        for sub_target, sub_value in zip(target.elts, value.elts, strict=True):
            _collect(sub_target, sub_value, params)


def is_papermill_parameters(source: str) -> bool:
    """Whether ``source`` is the parameters cell papermill injected into the notebook."""
    return source.lstrip().startswith(PAPERMILL_HEADER)
