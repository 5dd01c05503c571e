"""How a sweep's trial went: its state, its value, the parent's status, and pruned trials
stopping with a one-line notice instead of a traceback."""

from __future__ import annotations

import math
from typing import Any

from nbtrack._model import Run, Status
from nbtrack.sweep.pruning import PruneWatch
from nbtrack.view.live import show_notice

__all__ = ["quiet_pruned", "run_status", "trial_state", "trial_value"]


def trial_state(error: BaseException | None, watch: PruneWatch | None) -> str:
    from optuna import TrialPruned

    if isinstance(error, TrialPruned) or (watch is not None and watch.pruned_at is not None):
        return "PRUNED"
    if isinstance(error, KeyboardInterrupt):
        return "KILLED"
    return "FAILED" if error is not None else "COMPLETE"


def run_status(error: BaseException | None) -> Status:
    if error is None:
        return Status.FINISHED
    return Status.KILLED if isinstance(error, KeyboardInterrupt) else Status.FAILED


def trial_value(run: Run, metric: str | None, goal: str | None, objective: str) -> float | None:
    """A trial's value: its metric's last logged value, or its best (by ``goal``)."""
    curve = None if metric is None else run.curves.get(metric)
    if curve is None or curve.count <= curve.nonfinite:
        return None
    best = curve.max if goal == "max" else curve.min
    value = best if objective == "best" else curve.last
    return value if math.isfinite(value) else None


def quiet_pruned(shell: Any, pruned: type[BaseException]) -> Any:
    """While the sweep runs, a pruned trial's code stops with a one-line notice instead of a
    traceback (IPython's custom exception hook, left alone if the user set one)."""
    if getattr(shell, "custom_exceptions", ()) != ():
        return lambda: None
    previous = shell.CustomTB

    def notice(_shell: Any, _kind: Any, value: BaseException, _tb: Any, **_: Any) -> list[str]:
        show_notice(f"nbtrack: {value}")
        return []

    shell.set_custom_exc((pruned,), notice)

    def restore() -> None:
        shell.custom_exceptions = ()
        shell.CustomTB = previous

    return restore
