"""The sender: buffer -> batches -> the run's journal, then its live view.

One daemon thread per kernel wakes every ``NBTRACK_FLUSH_INTERVAL`` seconds (default 0.5) and
drains every run still being logged. Each wake has a fixed cost, ~0.5-1 ms of GIL time inside a
busy loop, which fewer wakes spread over more points. The work per batch is cheap by design:
group points per metric, read device tensors, extend the curves, append one line to the
journal. The expensive MLflow client runs in the sync process, outside the kernel, so the
training loop keeps the GIL to itself. At each wake it also calls each run's ``poll``, which
follows the sync process's progress (and, after the cell ended, updates the record).
"""

from __future__ import annotations

import math
import os
import sys
import threading
import warnings
from array import array
from itertools import pairwise
from operator import itemgetter
from typing import Any

from nbtrack import _registry
from nbtrack._buffer import take
from nbtrack._curves import Curve
from nbtrack._interrupts import interrupts_deferred
from nbtrack._model import Batch, MetricPoints, Run
from nbtrack._registry import TrackedRun
from nbtrack._settings import settings
from nbtrack.errors import NbtrackWarning

__all__ = ["drain", "ensure_sender", "show", "stop_sender"]

_Call = tuple[int | None, float, dict[str, Any]]


def drain(tracked: TrackedRun) -> Batch:
    """Move everything ``tracked`` buffered into its curves, its journal and its views.

    In the cell's thread (a full buffer, ``nbtrack.wait()``) an interrupt is held back until
    the move is done, then raised: what was taken out of the buffer reaches the journal."""
    with interrupts_deferred():
        return _drain(tracked)


def _drain(tracked: TrackedRun) -> Batch:
    run = tracked.run
    with tracked.drain_lock:
        calls, pending = take(tracked.buffer)
        batch = Batch()
        if calls:
            if tracked.buffer.on_device:
                _read_device_values(calls)
            _group(run, calls, batch)
        for kind, payload in pending:
            if kind == "params":
                batch.params.update(payload)
            elif kind == "tags":
                batch.tags.update(payload)
            elif kind == "delete":
                batch.deletions.append(payload)
            else:
                batch.artifacts.append(payload)
        if not batch:
            return batch
        _extend_curves(run, batch)
        # Durable first: a view that fails must not keep a batch out of the journal.
        tracked.journal.update(run, batch)
        for view in tracked.views:
            try:
                view.update(run, batch)
            except Exception as error:  # noqa: BLE001 - a broken view must not stop the run
                _warn_once(view, error)
        return batch


def show(tracked: TrackedRun, batch: Batch) -> None:
    """Points stored in MLflow by someone else (the sync process's system metrics): into the
    run's curves, and so its live view and record, but not into its journal."""
    with tracked.drain_lock:
        _extend_curves(tracked.run, batch)


def _extend_curves(run: Run, batch: Batch) -> None:
    for key, points in batch.metrics.items():
        curve = run.curves.get(key)
        if curve is None:
            curve = run.curves[key] = Curve()
        had_nonfinite = curve.nonfinite
        curve.extend(points.steps, points.values, points.seconds)
        if curve.nonfinite and not had_nonfinite:
            # A NaN/inf loss is the classic sign of divergence: make it searchable in MLflow.
            batch.tags[f"nbtrack.nonfinite.{key}"] = f"first at step {_first_nonfinite(points)}"


def _first_nonfinite(points: MetricPoints) -> int:
    for step, value in zip(points.steps, points.values, strict=True):
        if not math.isfinite(value):
            return step
    return -1


def _group(run: Run, calls: list[_Call], batch: Batch) -> None:
    """Per-metric points from the buffered calls, in call order.

    Consecutive calls with implicit steps and the same names (a loop's call site) are read
    column by column with C-level helpers; other calls point by point.
    """
    pieces: dict[str, list[MetricPoints]] = {}
    n = len(calls)
    names = calls[0][2].keys()
    # The usual batch: one loop's calls, all alike. Checked with C-level helpers (a count over
    # mapped key views), which cost a fraction of a Python loop over the calls.
    if [call[0] for call in calls].count(None) == n and list(
        map(dict.keys, map(itemgetter(2), calls))
    ).count(names) == n:
        _uniform(run, calls, list(names), pieces)
    else:
        _mixed(run, calls, pieces)
    joined_seconds: dict[tuple[int, ...], array[float]] = {}
    for key, parts in pieces.items():
        batch.metrics[key] = parts[0] if len(parts) == 1 else _joined(parts, joined_seconds)


def _mixed(run: Run, calls: list[_Call], pieces: dict[str, list[MetricPoints]]) -> None:
    """Calls of several call sites or with explicit steps: runs of alike calls column by
    column, the rest point by point."""
    n = len(calls)
    start = 0
    while start < n:
        step, _, first = calls[start]
        end = start + 1
        if step is None:
            names = first.keys()
            while end < n and calls[end][0] is None and calls[end][2].keys() == names:
                end += 1
            _uniform(run, calls[start:end], list(names), pieces)
        else:
            while end < n and calls[end][0] is not None:
                end += 1
            _stepped(run, calls[start:end], pieces)
        start = end


def _uniform(
    run: Run, calls: list[_Call], names: list[str], pieces: dict[str, list[MetricPoints]]
) -> None:
    n = len(calls)
    seconds = array("d", map(itemgetter(1), calls))
    dicts = map(itemgetter(2), calls)
    if len(names) == 1:
        columns: Any = [list(map(itemgetter(names[0]), dicts))]
    else:
        columns = zip(*map(itemgetter(*names), dicts), strict=True)
    next_step = run.next_step
    for key, column in zip(names, columns, strict=True):
        first = next_step.get(key, 0)
        next_step[key] = first + n
        points = MetricPoints(range(first, first + n), array("d", column), seconds)
        pieces.setdefault(key, []).append(points)


def _stepped(run: Run, calls: list[_Call], pieces: dict[str, list[MetricPoints]]) -> None:
    columns: dict[str, tuple[array[int], list[Any], array[float]]] = {}
    next_step = run.next_step
    for step, second, logged in calls:
        at = int(step or 0)  # these calls all name their step
        for key, value in logged.items():
            column = columns.get(key)
            if column is None:
                column = columns[key] = (array("q"), [], array("d"))
            column[0].append(at)
            column[1].append(value)
            column[2].append(second)
            next_step[key] = at + 1
    for key, (steps, values, seconds) in columns.items():
        pieces.setdefault(key, []).append(MetricPoints(steps, array("d", values), seconds))


def _read_device_values(calls: list[_Call]) -> None:
    """Replace, in place, the device tensors ``log`` kept with their values: one transfer per
    device and dtype for the whole batch, since each read waits for the device (one read per
    point would wait once per point)."""
    groups: dict[tuple[Any, Any], list[tuple[dict[str, Any], str]]] = {}
    for _, _, values in calls:
        for key, value in values.items():
            if type(value) is not float:
                groups.setdefault((value.device, value.dtype), []).append((values, key))
    torch = sys.modules["torch"]  # a device tensor was logged, so torch is loaded
    for places in groups.values():
        try:
            numbers = torch.cat([values[key].reshape(1) for values, key in places]).tolist()
        except (RuntimeError, TypeError, ValueError):  # e.g. a device that failed: one by one
            numbers = [_device_value(values[key]) for values, key in places]
        for (values, key), number in zip(places, numbers, strict=True):
            values[key] = float(number)


def _device_value(value: Any) -> float:
    try:
        return float(value.item())
    except (TypeError, ValueError, RuntimeError):
        # A device that failed to answer: stored as NaN, visibly, rather than dropping the point.
        return math.nan


def _joined(
    parts: list[MetricPoints], joined_seconds: dict[tuple[int, ...], array[float]]
) -> MetricPoints:
    """One metric's pieces of a batch as one, sharing a joined time column with the other
    metrics of the same calls (the journal stores each distinct time column once)."""
    steps: range | array[int]
    ranges = [part.steps for part in parts if isinstance(part.steps, range)]
    if len(ranges) == len(parts) and all(a.stop == b.start for a, b in pairwise(ranges)):
        steps = range(ranges[0].start, ranges[-1].stop)
    else:
        steps = array("q")
        for part in parts:
            steps.extend(part.steps)
    values = array("d")
    for part in parts:
        values.extend(part.values)
    identity = tuple(id(part.seconds) for part in parts)
    seconds = joined_seconds.get(identity)
    if seconds is None:
        seconds = joined_seconds[identity] = array("d")
        for part in parts:
            seconds.extend(part.seconds)
    return MetricPoints(steps, values, seconds)


_warned: set[int] = set()


def _warn_once(view: object, error: Exception) -> None:
    if id(view) not in _warned:
        _warned.add(id(view))
        warnings.warn(
            f"nbtrack: {type(view).__name__} failed and skips this update: {error!r}",
            NbtrackWarning,
            stacklevel=2,
        )


class Sender:
    """One daemon thread per kernel, draining every run that still has data in memory."""

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="nbtrack-sender", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float) -> None:
        """End the thread after its current wake, and wait for it up to ``timeout`` seconds."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            self._wake.wait(settings().flush_interval)
            self._wake.clear()
            if self._stopping:
                return
            for tracked in _registry.draining():
                try:
                    self._serve(tracked)
                except Exception as error:  # noqa: BLE001 - the thread must outlive any one run
                    _warn_once(self, error)

    @staticmethod
    def _serve(tracked: TrackedRun) -> None:
        ended = tracked.run.ended  # read first: the cell's end drains an ended run itself
        if not ended:
            drain(tracked)
            _registry.review_guard(tracked)
        done = tracked.poll() if tracked.poll is not None else ended
        if done:
            # Stored, ended, and its record says so: nothing more to do for it.
            _registry.forget(tracked)


_sender: Sender | None = None
_start_lock = threading.Lock()


def ensure_sender() -> Sender:
    """The kernel's sender thread, started on first use."""
    global _sender  # noqa: PLW0603 - one sender thread per kernel
    with _start_lock:
        if _sender is None:
            _sender = Sender()
        return _sender


def stop_sender(timeout: float = 5.0) -> None:
    """Stop this process's sender thread and wait for it, for a process about to exit; the
    caller drains what is left. A daemon thread still running when the interpreter shuts down
    is ended wherever it is (``pthread_exit``, before Python 3.14); inside a C++ extension's
    GIL-released section (torch reading a device tensor) that is ``std::terminate``, and the
    process dies of SIGABRT after its work was done. A later ``ensure_sender`` starts a new
    thread."""
    global _sender
    with _start_lock:
        sender, _sender = _sender, None
    if sender is not None:
        sender.stop(timeout)


def _after_fork_in_child() -> None:
    # The parent's sender thread does not exist in a forked child; a child that logs starts
    # its own (and the lock may have been held by a thread that is gone).
    global _sender, _start_lock  # noqa: PLW0603
    _sender = None
    _start_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
