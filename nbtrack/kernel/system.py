"""The system metrics the sync process samples for a run (``journal/system.py``), as the kernel
shows them: every sample in the live view and the record with ``%%track --system``, and the
run's GPU energy in the record whenever NVML measured it.

The samples are already in MLflow (the sync process logged them): here they only extend the
run's curves, never its journal.
"""

from __future__ import annotations

from array import array
from pathlib import Path

from nbtrack import _sender
from nbtrack._model import Batch, MetricPoints
from nbtrack._registry import TrackedRun
from nbtrack.journal.format import read_lines
from nbtrack.journal.system import ENERGY_METRIC, SYSTEM_SUFFIX

__all__ = ["SystemSamples"]

_READ_BYTES = 1024 * 1024


class SystemSamples:
    """Reads one run's ``<run>.system`` file from where it stopped."""

    def __init__(self, journal_path: Path, show_all: bool) -> None:
        self.path = journal_path.with_suffix(SYSTEM_SUFFIX)
        self.show_all = show_all
        self.offset = 0

    def follow(self, tracked: TrackedRun) -> bool:
        """Add the samples taken since the last call to the run's curves; True if any."""
        if not self.path.exists():
            return False
        batch = Batch()
        for record, end in read_lines(self.path, self.offset, _READ_BYTES):
            self.offset = end
            if record is None:
                continue
            values = record.get("m") or {}
            if record["t"] == "energy":
                values = {ENERGY_METRIC: values[ENERGY_METRIC]} if ENERGY_METRIC in values else {}
            elif not self.show_all:
                continue
            for key, value in values.items():
                points = batch.metrics.get(key)
                if points is None:
                    points = batch.metrics[key] = MetricPoints(array("q"), array("d"), array("d"))
                points.steps.append(int(record.get("step", 0)))  # type: ignore[union-attr]
                points.values.append(float(value))
                points.seconds.append(float(record.get("time", 0.0)))
        if not batch:
            return False
        _sender.show(tracked, batch)
        return True
