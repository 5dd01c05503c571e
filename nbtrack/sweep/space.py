"""What ``--sweep NAME=SPEC`` means: the values a sweep tries for one name.

A spec is read on its syntax tree, never executed:

- ``[1e-3, 3e-3, 1e-2]``: these values; a sweep whose names are all lists is a grid (every
  combination once);
- ``uniform(0.1, 0.9)``, ``loguniform(1e-4, 1e-1)``: a float in that range (``step=`` for a
  uniform one on a lattice);
- ``int(32, 256)``: an integer in that range, ends included (``step=``, ``log=True``);
- ``choice(['adam', 'sgd'])``: one of these values.

Ranges and choices are searched by Optuna's TPE (or random) sampler for ``--trials N`` trials.
"""

from __future__ import annotations

import ast
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from nbtrack._model import check_key

__all__ = ["Dimension", "SpecError", "grid_points", "parse_dimension"]

Kind = Literal["values", "choice", "float", "int"]

_EXAMPLES = (
    '"lr=[1e-3, 3e-3]", "lr=loguniform(1e-4, 1e-1)", "dropout=uniform(0, 0.5)", '
    "\"hidden=int(32, 256)\", \"opt=choice(['adam', 'sgd'])\""
)


class SpecError(ValueError):
    """A ``--sweep`` spec that cannot be read; the message says how to write it."""


@dataclass(frozen=True)
class Dimension:
    """The values one name takes in a sweep."""

    name: str
    kind: Kind
    values: tuple[Any, ...] = ()  # "values" and "choice"
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    text: str = field(default="", compare=False)  # the spec as the user wrote it

    @property
    def is_list(self) -> bool:
        return self.kind == "values"

    def suggest(self, trial: Any) -> Any:
        """This dimension's value for an Optuna trial (enqueued grid trials get theirs back)."""
        if self.kind in ("values", "choice"):
            return trial.suggest_categorical(self.name, list(self.values))
        if self.kind == "int":
            step = 1 if self.step is None else int(self.step)
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=step, log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)


def parse_dimension(item: str) -> Dimension:
    """``NAME=SPEC`` as a Dimension; ``SpecError`` saying what is wrong and how to write it."""
    name, sep, spec = item.partition("=")
    name, spec = name.strip(), spec.strip()
    if not sep or not name or not spec:
        msg = f"--sweep expects NAME=SPEC, got {item!r}; e.g. {_EXAMPLES}"
        raise SpecError(msg)
    if not name.isidentifier():
        msg = f"--sweep {item!r}: {name!r} is not a Python name the cell could assign"
        raise SpecError(msg)
    try:
        check_key(name, "param")
        tree = ast.parse(spec, mode="eval").body
    except (SyntaxError, ValueError) as error:
        msg = f"--sweep {item!r}: cannot read {spec!r} ({error}); write e.g. {_EXAMPLES}"
        raise SpecError(msg) from None
    if isinstance(tree, ast.List | ast.Tuple):
        values = _literal(tree, item)
        return Dimension(name, "values", values=_checked_values(values, item), text=spec)
    if isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name):
        return _call(name, tree.func.id, tree, item, spec)
    msg = f"--sweep {item!r}: {spec!r} is neither a list of values nor a range; e.g. {_EXAMPLES}"
    raise SpecError(msg)


def _literal(node: ast.expr, item: str) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        msg = f"--sweep {item!r}: {ast.unparse(node)!r} must be literal values (numbers, strings)"
        raise SpecError(msg) from None


def _checked_values(values: Sequence[Any], item: str) -> tuple[Any, ...]:
    if not values:
        msg = f"--sweep {item!r}: the list is empty; give at least one value"
        raise SpecError(msg)
    for value in values:
        # What Optuna stores for a categorical choice in any storage.
        if value is not None and not isinstance(value, str | int | float | bool):
            msg = (
                f"--sweep {item!r}: {value!r} is a {type(value).__name__}; a sweep tries "
                "numbers, strings, booleans or None (sweep a name that selects the structure, "
                "e.g. depth=[2, 3])"
            )
            raise SpecError(msg)
    if len(set(map(repr, values))) != len(values):
        msg = f"--sweep {item!r}: a value is listed twice"
        raise SpecError(msg)
    return tuple(values)


def _call(name: str, func: str, call: ast.Call, item: str, spec: str) -> Dimension:
    args = [_literal(arg, item) for arg in call.args]
    kwargs = {kw.arg: _literal(kw.value, item) for kw in call.keywords if kw.arg}
    if func == "choice":
        values = args[0] if len(args) == 1 and isinstance(args[0], list | tuple) else args
        if kwargs:
            msg = f"--sweep {item!r}: choice() takes values only, e.g. choice(['adam', 'sgd'])"
            raise SpecError(msg)
        return Dimension(name, "choice", values=_checked_values(values, item), text=spec)
    forms = {"uniform": ("float", False), "loguniform": ("float", True), "int": ("int", False)}
    if func not in forms:
        msg = f"--sweep {item!r}: unknown {func}(); use choice, uniform, loguniform or int"
        raise SpecError(msg)
    kind, log = forms[func]
    allowed = {"step", "log"} if kind == "int" else ({"step"} if not log else set())
    unknown = set(kwargs) - allowed
    if len(args) != 2 or unknown:
        msg = (
            f"--sweep {item!r}: write {func}(LOW, HIGH"
            + (", step=..." if "step" in allowed else "")
            + (", log=True" if "log" in allowed else "")
            + ")"
        )
        raise SpecError(msg)
    low, high = args
    numbers = (int,) if kind == "int" else (int, float)
    if not all(isinstance(v, numbers) and not isinstance(v, bool) for v in (low, high)):
        what = "integers" if kind == "int" else "numbers"
        msg = f"--sweep {item!r}: the ends of {func}() must be {what}"
        raise SpecError(msg)
    log = log or bool(kwargs.get("log", False))
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high or (log and low <= 0):
        need = "0 < LOW < HIGH" if log else "LOW < HIGH"
        msg = f"--sweep {item!r}: {func}() needs {need}"
        raise SpecError(msg)
    step = kwargs.get("step")
    if step is not None and (not isinstance(step, int | float) or step <= 0 or log):
        msg = f"--sweep {item!r}: step must be a positive number (and not with a log scale)"
        raise SpecError(msg)
    return Dimension(name, kind, low=low, high=high, log=log, step=step, text=spec)  # type: ignore[arg-type]


def grid_points(dimensions: Sequence[Dimension]) -> Iterator[dict[str, Any]]:
    """Every combination of the dimensions' values, the first name varying slowest."""
    names = [d.name for d in dimensions]
    for combination in itertools.product(*(d.values for d in dimensions)):
        yield dict(zip(names, combination, strict=True))
