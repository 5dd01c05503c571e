"""Pruning a trial from the values its cell logs with ``nbtrack.log`` (``--prune``).

Each call that logs the sweep's metric is handed over, right after its append, to
``PruneWatch.check`` in the thread that logged it (the buffer's ``watched`` names; other
names and other runs keep the usual path, untouched). The check drains the run's buffer,
reports the metric's new values to the Optuna trial at their steps, and asks Optuna's pruner;
when the trial should stop, it raises ``optuna.TrialPruned`` from that ``nbtrack.log`` call,
in the cell's code, after the value was recorded: the cell stops there as if it raised, and the
sweep ends the trial's run as pruned.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from nbtrack._buffer import MAX_BUFFERED_CALLS
from nbtrack._registry import TrackedRun

__all__ = ["PruneWatch"]


class PruneWatch:
    """Reports a trial's metric to Optuna as it is logged, and stops the trial when pruned."""

    def __init__(self, tracked: TrackedRun, trial: Any, metric: str) -> None:
        self.tracked, self.trial, self.metric = tracked, trial, metric
        self.pruned_at: int | None = None
        self.pruned_value: float | None = None
        self._reported = -math.inf
        buffer = tracked.buffer
        self._drain = buffer.overflow
        buffer.watched = frozenset({metric})
        buffer.overflow = self.check

    def check(self) -> None:
        """Drain, report, and raise ``optuna.TrialPruned`` in the cell's thread if pruned."""
        from optuna import TrialPruned

        buffer = self.tracked.buffer
        buffer.limit = MAX_BUFFERED_CALLS
        if self._drain is not None:
            self._drain()
        if self.pruned_at is None:
            self._report()
        if self.pruned_at is not None and threading.get_ident() == buffer.owner:
            # (Again at each later call, should the cell have caught the first one.)
            msg = (
                f"trial {self.trial.number} pruned at step {self.pruned_at}: {self.metric} = "
                f"{self.pruned_value:.4g} is not promising"
            )
            raise TrialPruned(msg)

    def _report(self) -> None:
        curve = self.tracked.run.curves.get(self.metric)
        if curve is None or not curve.count:
            return
        steps, values = curve.points()
        for step, value in zip(steps.tolist(), values.tolist(), strict=True):
            if step <= self._reported or not math.isfinite(value):
                continue
            self._reported = step
            self.trial.report(value, int(step))
            if self.trial.should_prune():
                self.pruned_at, self.pruned_value = int(step), value
                return
