"""Uploading the journals of a run's other processes (``child.py``) into the run.

Runs in the sync process, as part of uploading the run's own journal (``upload.py``): each
``<run>.<n>.child`` is read from its acknowledged offset (kept in ``<run>.<n>.state``, so that a
restart resumes there and nothing is sent twice), its metrics go in ``log_batch`` calls like
the run's own, its header becomes the tag that says which process it was. Before the run is
ended, everything its processes journaled is uploaded.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

from nbtrack._files import read_json, write_json_atomic
from nbtrack.journal.folders import STATE_SUFFIX, child_journals
from nbtrack.journal.format import read_lines

__all__ = ["ChildUploads"]

log = logging.getLogger("nbtrack.sync")

_READ_CHUNK = 4 * 1024 * 1024
_MAX_METRICS_PER_BATCH = 1000


class _Run(Protocol):
    """What a child journal needs of the run's uploader."""

    def points(self, record: dict[str, Any]) -> list[Any]: ...

    def send_metrics(self, metrics: list[Any]) -> None: ...

    def send_tags(self, tags: dict[str, str]) -> None: ...


class ChildUploads:
    """The child journals of one run's journal (``spool``)."""

    def __init__(self, spool: Path) -> None:
        self.spool = spool
        self._offsets: dict[Path, int] = {}

    def step(self, run: _Run, max_points: int | None = None) -> tuple[bool, int]:
        """Upload what is new in each child journal, or about ``max_points`` of it (whole lines).
        Returns (whether anything was uploaded, points sent)."""
        progressed = False
        sent = 0
        for path in child_journals(self.spool):
            offset = self._offset(path)
            metrics: list[Any] = []
            for record, end_offset in read_lines(path, offset, _READ_CHUNK):
                if record is None:
                    log.warning("journal %s: skipped a line that is not JSON", path.name)
                elif record["t"] == "b":
                    metrics.extend(run.points(record))
                    if len(metrics) < _MAX_METRICS_PER_BATCH:
                        offset = end_offset
                        continue
                elif record["t"] in ("child", "g"):
                    run.send_metrics(metrics)  # in order: the points before the tags
                    sent += len(metrics)
                    metrics = []
                    run.send_tags(_tags(record))
                run.send_metrics(metrics)
                sent += len(metrics)
                metrics = []
                offset = self._ack(path, end_offset)
                progressed = True
                if max_points is not None and sent >= max_points:
                    return progressed, sent
            if metrics:
                run.send_metrics(metrics)
                sent += len(metrics)
            if offset != self._offset(path):
                self._ack(path, offset)
                progressed = True
        return progressed, sent

    def remove(self) -> None:
        for path in child_journals(self.spool):
            _state(path).unlink(missing_ok=True)
            path.unlink(missing_ok=True)

    def _offset(self, path: Path) -> int:
        offset = self._offsets.get(path)
        if offset is None:
            offset = self._offsets[path] = int((read_json(_state(path)) or {}).get("offset", 0))
        return offset

    def _ack(self, path: Path, offset: int) -> int:
        write_json_atomic(_state(path), {"offset": offset})
        self._offsets[path] = offset
        return offset


def _state(path: Path) -> Path:
    return path.with_suffix(STATE_SUFFIX)


def _tags(record: dict[str, Any]) -> dict[str, str]:
    if record["t"] == "child":  # which process this was: rank0, rank1, process2...
        return {f"nbtrack.processes.{record.get('name')}": str(record.get("process", ""))[:4900]}
    return {str(k): str(v) for k, v in dict(record.get("g") or {}).items()}
