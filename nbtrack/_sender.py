"""The sender thread: turns what ``nbtrack.log`` buffered into batches and hands them to sinks.

It wakes every ``NBTRACK_FLUSH_INTERVAL`` seconds (default 0.1). The work it does per batch is
cheap by design (group points per metric, convert tensors, extend the curves, append a line to
the spool); the expensive MLflow client runs in the sync process, outside the kernel, so the
training loop keeps the GIL to itself.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from itertools import islice
from operator import itemgetter
from typing import Any

from nbtrack import run as runs
from nbtrack._warnings import NbtrackWarning
from nbtrack.sinks import Batch, MetricPoints

_DEFAULT_INTERVAL_S = 0.1


def drain(run: runs.Run) -> Batch:
    """Move everything ``run`` buffered into its curves and its sinks; return the batch."""
    from nbtrack.curves import Curve

    with run.drain_lock:
        calls, pending = run.calls, run.pending
        n_calls, n_pending = len(calls), len(pending)
        batch = Batch()
        if n_calls:
            _group(run, calls[:n_calls], batch)
            # Anything appended by `log` meanwhile sits after index n_calls and survives.
            del calls[:n_calls]
        if n_pending:
            for kind, payload in islice(pending, n_pending):
                if kind == "params":
                    batch.params.update(payload)
                elif kind == "tags":
                    batch.tags.update(payload)
                else:
                    batch.artifacts.append(payload)
            del pending[:n_pending]
        if not batch:
            return batch
        for key, points in batch.metrics.items():
            curve = run.curves.get(key)
            if curve is None:
                curve = run.curves[key] = Curve()
            had_nonfinite = curve.nonfinite
            curve.extend(points.steps, points.values)
            if curve.nonfinite and not had_nonfinite:
                # A NaN/inf loss is the classic sign of divergence: make it searchable in MLflow.
                batch.tags[f"nbtrack.nonfinite.{key}"] = f"first at step {_first_nonfinite(points)}"
        for sink in run.sinks:
            try:
                sink.update(run, batch)
            except Exception as error:  # noqa: BLE001 - one broken sink must not stop the others
                _warn_once(sink, error)
        return batch


def _first_nonfinite(points: MetricPoints) -> int:
    for step, value in zip(points.steps, points.values, strict=True):
        if not math.isfinite(value):
            return step
    return -1


def _group(
    run: runs.Run, calls: list[tuple[int | None, float, dict[str, Any]]], batch: Batch
) -> None:
    """Turn ``log`` calls into per-metric points with their steps.

    The common shape of a training loop (same metrics every call, implicit steps) is handled
    column-wise with C-level helpers; anything else point by point.
    """
    steps_col, seconds_col, dicts = zip(*calls, strict=True)
    stamps = [int(seconds * 1000) for seconds in seconds_col]
    keys = dicts[0].keys()
    next_step = run.next_step
    metrics = batch.metrics
    if steps_col.count(None) == len(calls) and all(d.keys() == keys for d in dicts):
        for key in keys:
            start = next_step.get(key, 0)
            next_step[key] = start + len(dicts)
            values = list(map(itemgetter(key), dicts))
            if run.needs_conversion:
                values = list(map(runs.to_float, values))
            metrics[key] = MetricPoints(list(range(start, start + len(dicts))), values, stamps)
        return
    convert = run.needs_conversion
    to_float = runs.to_float
    for step, ms, values in zip(steps_col, stamps, dicts, strict=True):
        for key, value in values.items():
            at = next_step.get(key, 0) if step is None else step
            next_step[key] = at + 1
            points = metrics.get(key)
            if points is None:
                points = metrics[key] = MetricPoints()
            points.steps.append(at)
            points.values.append(to_float(value) if convert else value)
            points.timestamps_ms.append(ms)


_warned: set[int] = set()


def _warn_once(sink: object, error: Exception) -> None:
    if id(sink) not in _warned:
        _warned.add(id(sink))
        warnings.warn(
            f"nbtrack: {type(sink).__name__} failed and skips this update: {error!r}",
            NbtrackWarning,
            stacklevel=2,
        )


class Sender:
    """One daemon thread per kernel, draining every run that still has data in memory."""

    def __init__(self) -> None:
        self.interval = float(os.environ.get("NBTRACK_FLUSH_INTERVAL", _DEFAULT_INTERVAL_S))
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="nbtrack-sender", daemon=True)
        self._thread.start()

    def wake(self, _run: runs.Run | None = None) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            for run in runs.runs_to_drain():
                if run.ended:
                    continue  # its final drain belongs to the main thread at cell end
                drain(run)


_sender: Sender | None = None
_start_lock = threading.Lock()


def ensure_sender() -> Sender:
    global _sender  # noqa: PLW0603 - one sender thread per kernel
    with _start_lock:
        if _sender is None:
            _sender = Sender()
            runs.on_new_run = _sender.wake
        return _sender
