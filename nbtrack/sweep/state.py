"""What the kernel knows of a running sweep, and its view: one record under the cell.

``SweepState`` holds each trial's params, state, value and curve of the sweep's metric. The
sender thread updates a trial's curve after each of its batches (``TrialFeed``, one of the
trial run's outputs) and the sweep's view redraws; the runner updates states and values in the
main thread. ``SweepView`` is the parent run's live view with the trials added to its record:
redrawn in place as any live view, at most twice a second, and left as the final record.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbtrack.record.metrics import metric_goal
from nbtrack.view.live import LiveView, record_bundle

if TYPE_CHECKING:
    from nbtrack._model import Batch, Run

__all__ = ["SweepState", "SweepView", "TrialFeed", "guess_metric"]

# Points of a trial's curve kept in the kernel (the record thins them further).
_KEPT_POINTS = 300
_ROLE_FIRST = ("val", "valid", "validation", "eval", "test", "dev")


@dataclass
class _Trial:
    number: int
    name: str
    params: dict[str, str]
    state: str = "RUNNING"
    value: float | None = None
    step: int | None = None
    steps: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    run: Run | None = None  # this kernel's trials: their run id arrives from the sync process


def guess_metric(names: list[str]) -> str | None:
    """The metric a sweep without ``--sweep-metric`` ranks by: the first one logged whose goal
    is known, a validation one first (``val/loss`` before ``train/loss``)."""
    known = [name for name in names if metric_goal(name) is not None]
    for name in known:
        if name.lower().replace("_", "/").split("/")[0] in _ROLE_FIRST:
            return name
    return known[0] if known else None


class SweepState:
    """A sweep's trials, shared by the runner (main thread), the sender and the view."""

    def __init__(
        self,
        study: str,
        sampler: str,
        total: int,
        *,
        metric: str | None,
        goal: str | None,
        objective: str,
    ) -> None:
        self.study, self.sampler, self.total = study, sampler, total
        self.metric, self.goal, self.objective = metric, goal, objective
        self.version = 0
        self._lock = threading.Lock()
        self._trials: dict[int, _Trial] = {}

    def started(self, number: int, name: str, params: dict[str, Any], run: Run | None) -> None:
        with self._lock:
            texts = {key: repr(value) for key, value in params.items()}
            self._trials[number] = _Trial(number, name, texts, run=run)
            self.version += 1

    def feed(self, number: int, run: Run) -> None:
        """Copy the trial's curve of the sweep's metric (its run's drain lock held)."""
        from nbtrack._decimate import kept_indices

        metric = self.metric
        curve = None if metric is None else run.curves.get(metric)
        if curve is None or not curve.count:
            return
        steps, values, _ = curve.in_step_order()
        keep = kept_indices(values, _KEPT_POINTS)
        with self._lock:
            trial = self._trials.get(number)
            if trial is not None:
                trial.steps, trial.values = steps[keep].tolist(), values[keep].tolist()
                trial.step = int(curve.last_step)
                self.version += 1

    def finished(self, number: int, state: str, value: float | None) -> None:
        with self._lock:
            trial = self._trials.get(number)
            if trial is not None:
                trial.state = state
                finite = value is not None and math.isfinite(value)
                trial.value = value if finite else None
                self.version += 1

    def merge(self, others: list[dict[str, Any]]) -> None:
        """Trials other kernels ran (read from a shared study): listed, without curves."""
        with self._lock:
            for other in others:
                number = int(other["number"])
                mine = self._trials.get(number)
                if mine is not None and mine.run is not None:
                    continue
                self._trials[number] = _Trial(
                    number, other["name"], other["params"], other["state"], other["value"]
                )
            self.version += 1

    def source(self) -> dict[str, Any]:
        """The sweep as ``RecordSource.sweep``."""
        with self._lock:
            trials = [
                {
                    "number": t.number,
                    "name": t.name,
                    "params": dict(t.params),
                    "state": t.state,
                    "value": t.value,
                    "step": t.step,
                    "steps": list(t.steps),
                    "values": list(t.values),
                    "run_id": None if t.run is None else t.run.run_id,
                }
                for t in self._trials.values()
            ]
        return {
            "study": self.study,
            "sampler": self.sampler,
            "metric": self.metric,
            "goal": self.goal,
            "objective": self.objective,
            "trials_total": self.total,
            "trials": trials,
        }

    def key(self) -> tuple[object, ...]:
        with self._lock:
            ids = tuple(t.run.run_id for t in self._trials.values() if t.run is not None)
            return self.version, ids


class SweepView(LiveView):
    """The parent run's output slot: its record with the sweep's trials."""

    def __init__(self, run: Run, drain_lock: threading.Lock, sweep: SweepState) -> None:
        self.sweep = sweep
        super().__init__(run, drain_lock)

    def bundle(self, run: Run, *, png: bool) -> dict[str, Any]:
        return record_bundle(run, png=png, sweep=self.sweep.source())

    def change_key(self, run: Run) -> tuple[object, ...]:
        return (*super().change_key(run), self.sweep.key())


class TrialFeed:
    """One of a trial run's outputs: its curve of the sweep's metric goes to the sweep, and
    the sweep's view redraws (at most twice a second, as any live view)."""

    def __init__(self, sweep: SweepState, number: int, view: SweepView | None, parent: Run) -> None:
        self.sweep, self.number, self.view, self.parent = sweep, number, view, parent

    def update(self, run: Run, batch: Batch) -> None:
        if self.sweep.metric is None or self.sweep.metric not in batch.metrics:
            return
        self.sweep.feed(self.number, run)
        if self.view is not None:
            self.view.update(self.parent, batch)
