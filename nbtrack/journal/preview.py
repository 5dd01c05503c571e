"""A running run's newest points, sent ahead of the rest: what a teammate watching MLflow sees.

While a cell runs, its upload is paced (``pacer.py``) and may be far behind a loop that logs
thousands of points a second. Once a second, the newest point of each metric (in the run's own
journal and in those of its other processes) is sent ahead: the run's chart and latest values
in the MLflow UI are then a second or two old, whatever the pacing, for the cost of a few
points. The paced upload later skips exactly those points, so that each point is stored once
(after a restart of the sync process the store itself ignores a point it already has: same
key, step, time and value).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from nbtrack.journal.folders import child_journals
from nbtrack.journal.format import MalformedLine, batch_columns, decode_line

__all__ = ["PREVIEW_EVERY_S", "Preview"]

PREVIEW_EVERY_S = 1.0
# How far from its end a journal is read for its last batch line (a 0.5 s batch of a fast loop
# with a few metrics is ~100 KB); a longer line is not previewed.
_TAIL_BYTES = 1024 * 1024


class Preview:
    """The points of one run sent ahead, and when the next preview is due."""

    def __init__(self) -> None:
        self.sent: set[tuple[str, int, int, float | str]] = set()  # see _identity
        self._due = 0.0
        self._last: dict[str, tuple[int, int]] = {}  # key -> (step, timestamp ms) sent last

    def due(self) -> bool:
        return time.monotonic() >= self._due

    def newest(self, spool: Path) -> list[Any]:
        """The newest point of each metric of ``spool``'s run (its journal and those of its
        other processes) not sent ahead yet, as MLflow metrics. They count as sent only once
        the store took them (``sent_ahead``): a preview lost to an outage is not skipped."""
        from mlflow.entities import Metric

        self._due = time.monotonic() + PREVIEW_EVERY_S
        newest: dict[str, tuple[float, int, int]] = {}
        for path in [spool, *child_journals(spool)]:
            record = _last_batch(path)
            if record is None:
                continue
            try:
                columns = batch_columns(record)
            except MalformedLine:
                continue  # the upload skips and counts it
            for key, steps, values, seconds in columns:
                if values:
                    newest[key] = (values[-1], steps[-1], int(seconds[-1] * 1000))
        return [
            Metric(key, value, timestamp, step)
            for key, (value, step, timestamp) in newest.items()
            if self._last.get(key) != (step, timestamp)
        ]

    def sent_ahead(self, metrics: list[Any]) -> None:
        """The store took ``metrics`` (from ``newest``): the paced upload skips them."""
        for metric in metrics:
            self._last[metric.key] = (metric.step, metric.timestamp)
            self.sent.add(_identity(metric))

    def skip_sent(self, metrics: list[Any]) -> list[Any]:
        """``metrics`` without the points sent ahead (each is stored once)."""
        if not self.sent:
            return metrics
        sent = self.sent
        kept = []
        for metric in metrics:
            identity = _identity(metric)
            if identity in sent:
                sent.discard(identity)
            else:
                kept.append(metric)
        return kept


def _identity(metric: Any) -> tuple[str, int, int, float | str]:
    """What tells a point from every other of its run: a step logged twice in one millisecond
    differs only by its value (NaN, which equals nothing, as its name)."""
    value = metric.value
    return (metric.key, metric.step, metric.timestamp, "nan" if math.isnan(value) else value)


def _last_batch(path: Path) -> dict[str, Any] | None:
    """The last complete ``b`` line of a journal, or None."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - _TAIL_BYTES))
            tail = handle.read()
    except OSError:
        return None
    end = tail.rfind(b"\n")
    while end > 0:
        start = tail.rfind(b"\n", 0, end) + 1
        if start == 0 and size > _TAIL_BYTES:
            return None  # the line began before the tail: too long to preview
        line = tail[start:end]
        if line.startswith(b'{"t":"b"'):
            return decode_line(line)
        end = start - 1
    return None
