"""Parameters of a tracked cell, read from source code as notebooks are really written.

A param is a name bound once, to a literal (``lr = 3e-3``, ``layers = [64, 32]``):

- at the top level of the tracked cell itself; or
- in an earlier cell of the session, when the tracked cell reads the name and nothing has
  rebound it since (hyperparameters usually sit in a cell of their own above the training
  cell);
- in papermill's injected parameters cell, whether the cell reads it or not: those are what
  the person running the notebook chose to vary.

A name the cell binds again (``step = 0`` then ``step += 1``, a loop target, a second
assignment, an import) is state, not a param. A credential is never one: a name that looks
like one, or a variable the cell passes or stores as one (``login(token=tok)``). Nothing is
executed: the values come from the syntax tree, so capture costs a parse and can never run
user code twice.
"""

from __future__ import annotations

import ast
import contextlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from nbtrack._redact import credential_variables, is_secret_name

__all__ = ["CapturedParams", "SessionLiterals", "capture_params", "is_papermill_parameters"]

_MISSING = object()
# The first line papermill writes into the cell it injects.
PAPERMILL_HEADER = "# Parameters"


def is_papermill_parameters(source: str) -> bool:
    """Whether ``source`` is the parameters cell papermill injected into the notebook."""
    return source.lstrip().startswith(PAPERMILL_HEADER)


@dataclass
class CapturedParams:
    """What capture found: every param, and which of them came from earlier cells."""

    values: dict[str, Any] = field(default_factory=dict)
    from_session: list[str] = field(default_factory=list)


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _bound_names(tree: ast.AST) -> Counter[str]:
    """How many times each name is bound anywhere in ``tree`` (functions' own locals aside)."""
    counts: Counter[str] = Counter()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            counts[node.id] += 1  # assignments, `x += 1`, loop and `with` targets, walrus
        elif isinstance(node, ast.alias):
            counts[(node.asname or node.name).split(".")[0]] += 1
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            counts[node.name] += 1
        elif isinstance(node, ast.Global | ast.Nonlocal):
            for name in node.names:
                counts[name] += 2  # written from elsewhere: never a param
    return counts


def _top_level_literals(tree: ast.Module) -> dict[str, Any]:
    """Names bound at the top level to a literal (the last such binding of each)."""
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                _collect(target, node.value, found)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            _collect(node.target, node.value, found)
    return found


def _collect(target: ast.expr, value: ast.expr, found: dict[str, Any]) -> None:
    if isinstance(target, ast.Name):
        try:
            found[target.id] = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            found[target.id] = _MISSING  # computed: not a param
    elif (
        isinstance(target, ast.Tuple | ast.List)
        and isinstance(value, ast.Tuple | ast.List)
        and len(target.elts) == len(value.elts)
    ):
        for sub_target, sub_value in zip(target.elts, value.elts, strict=True):
            _collect(sub_target, sub_value, found)


def _params_of(tree: ast.Module) -> dict[str, Any]:
    """Names bound exactly once in the whole cell, at its top level, to a literal; names that
    look like credentials, or that the cell uses as one (``login(token=tok)``), are never
    params."""
    bound = _bound_names(tree)
    credentials = credential_variables(tree)
    return {
        name: value
        for name, value in _top_level_literals(tree).items()
        if value is not _MISSING
        and bound[name] == 1
        and not is_secret_name(name)
        and name not in credentials
    }


def capture_params(source: str) -> dict[str, Any]:
    """The params of ``source`` (Python, IPython syntax already transformed) on its own."""
    tree = _parse(source)
    return {} if tree is None else _params_of(tree)


class SessionLiterals:
    """Names earlier cells of the session bound once to a literal, still unchanged.

    ``observe`` each executed cell (in order); ``params_for`` a tracked cell.
    """

    def __init__(self) -> None:
        self._literals: dict[str, Any] = {}
        # Names papermill injected: params of every tracked cell, read or not (they are what
        # the person running the notebook chose to vary).
        self._injected: set[str] = set()

    def observe(self, source: str) -> None:
        tree = _parse(source)
        if tree is None:
            return
        bound = _bound_names(tree)
        params = _params_of(tree)
        for name in bound:
            self._literals.pop(name, None)  # rebound by this cell: no longer the old literal
            self._injected.discard(name)
        self._literals.update(params)
        if is_papermill_parameters(source):
            self._injected.update(params)

    def params_for(self, source: str, namespace: dict[str, Any]) -> CapturedParams:
        """The tracked cell's own params, plus the session literals it reads. A session
        literal counts only while the namespace still holds that value (code can rebind a
        name in ways no syntax tree shows: ``exec``, a function's ``global``)."""
        tree = _parse(source)
        if tree is None:
            return CapturedParams()
        captured = CapturedParams(values=_params_of(tree))
        bound_here = _bound_names(tree)
        credentials = credential_variables(tree)
        read = {
            node.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
        }
        for name in sorted(read | self._injected):
            if name in bound_here or name in credentials or name not in self._literals:
                continue
            value = self._literals[name]
            with contextlib.suppress(Exception):  # an odd __eq__ in the namespace: skip it
                if namespace.get(name, _MISSING) == value:
                    captured.values[name] = value
                    captured.from_session.append(name)
        return captured
