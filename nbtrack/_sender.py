"""The sender thread: turns what ``nbtrack.log`` buffered into batches and hands them to sinks.

It wakes every ``NBTRACK_FLUSH_INTERVAL`` seconds (default 0.5, the live plot's redraw
interval: each wake has a fixed cost, ~0.5-1 ms of GIL time inside a busy loop, which fewer
wakes spread over more points). The work it does per batch is cheap by design (group points per
metric, convert tensors, extend the curves, append a line to the spool); the expensive MLflow
client runs in the sync process, outside the kernel, so the training loop keeps the GIL to
itself.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from array import array
from collections.abc import Sequence
from itertools import islice, pairwise
from typing import Any

from nbtrack import run as runs
from nbtrack.errors import NbtrackWarning
from nbtrack.sinks import Batch, MetricPoints

_DEFAULT_INTERVAL_S = 0.5


def drain(run: runs.Run) -> Batch:
    """Move everything ``run`` buffered into its curves and its sinks; return the batch."""
    from nbtrack._curves import Curve

    with run.drain_lock:
        calls, pending = run.calls, run.pending
        n_calls, n_pending = len(calls), len(pending)
        batch = Batch()
        if n_calls:
            # Removed before being read: `log` extends a block only while it is the buffer's
            # last entry, so nothing can be added to what this drain reads. Anything appended
            # meanwhile sits after index n_calls and stays for the next drain.
            taken = calls[:n_calls]
            del calls[:n_calls]
            _group(run, taken, batch)
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


# A block entry of the buffer: (names, bytearray of float64 rows [time, values...]), packed by
# the C version of `log` (nbtrack/_hotpath.c). Every other entry is one call:
# (step or None, time, names, values).
_BLOCK = 2


def _group(run: runs.Run, entries: list[tuple[Any, ...]], batch: Batch) -> None:
    """Turn the buffer's entries into per-metric points, in call order."""
    pieces: dict[str, list[MetricPoints]] = {}
    calls: list[tuple[Any, ...]] = []
    block_rows = 0
    for entry in entries:
        if len(entry) == _BLOCK:
            if calls:
                _group_calls(run, calls, pieces)
                calls = []
            block_rows += _read_block(run, entry, pieces)
        else:
            calls.append(entry)
    if calls:
        _group_calls(run, calls, pieces)
    if block_rows:
        runs.rows_taken(run, block_rows)
    joined_seconds: dict[tuple[int, ...], array[float]] = {}
    for key, parts in pieces.items():
        batch.metrics[key] = parts[0] if len(parts) == 1 else _joined(parts, joined_seconds)


def _read_block(
    run: runs.Run, entry: tuple[Any, ...], pieces: dict[str, list[MetricPoints]]
) -> int:
    """A block's points, added to ``pieces``; returns its number of rows."""
    names, rows = entry
    table = array("d")
    table.frombytes(rows)
    width = len(names) + 1
    n = len(table) // width
    if not n:
        return 0
    seconds = table[0::width]
    next_step = run.next_step
    for column, key in enumerate(names, 1):
        start = next_step.get(key, 0)
        next_step[key] = start + n
        points = MetricPoints(range(start, start + n), table[column::width], seconds)
        pieces.setdefault(key, []).append(points)
    return n


def _group_calls(
    run: runs.Run, calls: list[tuple[Any, ...]], pieces: dict[str, list[MetricPoints]]
) -> None:
    """One entry per call: column by column with C-level helpers (``zip``, ``array``) when every
    call has the same names and implicit steps, the usual loop; point by point otherwise."""
    steps_col, seconds_col, names_col, values_col = zip(*calls, strict=True)
    n = len(names_col)
    names = names_col[0]
    next_step = run.next_step
    # A call site passes the same names tuple every time, so this count mostly compares
    # identities.
    if names and steps_col.count(None) == n and names_col.count(names) == n:
        seconds = array("d", seconds_col)
        by_name = zip(*values_col, strict=True)
        for key, logged in zip(names, by_name, strict=True):
            start = next_step.get(key, 0)
            next_step[key] = start + n
            values = _float_column(logged, run.needs_conversion)
            pieces.setdefault(key, []).append(
                MetricPoints(range(start, start + n), values, seconds)
            )
        return
    columns: dict[str, tuple[list[int], list[Any], list[float]]] = {}
    for step, second, keys, call_values in zip(
        steps_col, seconds_col, names_col, values_col, strict=True
    ):
        for key, value in zip(keys, call_values, strict=True):
            at = next_step.get(key, 0) if step is None else step
            next_step[key] = at + 1
            column = columns.get(key)
            if column is None:
                column = columns[key] = ([], [], [])
            column[0].append(at)
            column[1].append(value)
            column[2].append(second)
    for key, (steps, logged_values, stamps) in columns.items():
        points = MetricPoints(
            array("q", steps),
            _float_column(logged_values, run.needs_conversion),
            array("d", stamps),
        )
        pieces.setdefault(key, []).append(points)


def _joined(
    parts: list[MetricPoints], joined_seconds: dict[tuple[int, ...], array[float]]
) -> MetricPoints:
    """One metric's pieces of a batch as one, sharing a joined time column with the other
    metrics of the same calls (the spool line stores each distinct time column once)."""
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


def _float_column(values: Sequence[Any], convert: bool) -> array[float]:
    """Logged values as a float64 array. ``log`` let only numbers through; those that are not
    floats or ints (numpy scalars, device tensors) are converted here, off the hot path."""
    if not convert:
        try:
            return array("d", values)
        except OverflowError:  # an int beyond float range: NaN, like any unreadable value
            pass
    return array("d", map(runs.to_float, values))


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
