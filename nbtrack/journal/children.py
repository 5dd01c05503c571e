"""Uploading the journals of a run's other processes (``child.py``) into the run.

Runs in the sync process, as part of uploading the run's own journal (``upload.py``): each
``<run>.<n>.child`` is read from its acknowledged offset (kept in ``<run>.<n>.state``, so that a
restart resumes there and nothing is sent twice), its metrics go in ``log_batch`` calls like
the run's own, its header becomes the tag that says which process it was. Before the run is
ended, everything its processes journaled is uploaded. A line that is torn or not in the format
is skipped and counted (in the same ``.state``), and the run's end says how many.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

from nbtrack._files import read_json, write_json_atomic
from nbtrack.journal.folders import STATE_SUFFIX, child_journals
from nbtrack.journal.format import SKIPPED_LOG, MalformedLine, mapping, read_lines, whole

__all__ = ["ChildUploads"]

log = logging.getLogger("nbtrack.sync")

_READ_CHUNK = 4 * 1024 * 1024


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
        # Lines skipped up to each acknowledged offset, kept with it.
        self._skipped: dict[Path, int] = {}

    @property
    def skipped(self) -> int:
        """Lines of the run's other processes skipped so far (torn, or not in the format)."""
        return sum(self._skipped_in(path) for path in child_journals(self.spool))

    def step(self, run: _Run, batch: int, max_points: int | None = None) -> tuple[bool, int]:
        """Upload what is new in each child journal, or about ``max_points`` of it (whole lines),
        in ``log_batch`` calls of about ``batch`` points. Returns (whether anything was uploaded,
        points sent)."""
        progressed = False
        sent = 0
        for path in child_journals(self.spool):
            offset = self._offset(path)
            metrics: list[Any] = []
            skipped = 0  # since the acknowledged offset: counted as it moves past them
            for record, end_offset in read_lines(path, offset, _READ_CHUNK):
                try:
                    kind, content = _content(run, record)
                except MalformedLine as error:
                    log.warning(SKIPPED_LOG, path.name, offset, error)
                    skipped += 1
                    offset = end_offset
                    continue
                if kind == "b":
                    metrics.extend(content)
                    if len(metrics) < batch:
                        offset = end_offset
                        continue
                elif kind in ("child", "g"):
                    run.send_metrics(metrics)  # in order: the points before the tags
                    sent += len(metrics)
                    metrics = []
                    run.send_tags(content)
                run.send_metrics(metrics)
                sent += len(metrics)
                metrics = []
                offset = self._ack(path, end_offset, skipped)
                skipped = 0
                progressed = True
                if max_points is not None and sent >= max_points:
                    return progressed, sent
            if metrics:
                run.send_metrics(metrics)
                sent += len(metrics)
            if offset != self._offset(path):
                self._ack(path, offset, skipped)
                progressed = True
        return progressed, sent

    def remove(self) -> None:
        for path in child_journals(self.spool):
            _state(path).unlink(missing_ok=True)
            path.unlink(missing_ok=True)

    def _offset(self, path: Path) -> int:
        if path not in self._offsets:
            self._load(path)
        return self._offsets[path]

    def _skipped_in(self, path: Path) -> int:
        if path not in self._skipped:
            self._load(path)
        return self._skipped[path]

    def _load(self, path: Path) -> None:
        state = read_json(_state(path)) or {}
        self._offsets[path] = int(state.get("offset", 0))
        self._skipped[path] = int(state.get("skipped_lines") or 0)

    def _ack(self, path: Path, offset: int, skipped: int = 0) -> int:
        """Progress up to ``offset``, and the lines ``skipped`` before it, made durable."""
        self._offsets[path] = offset
        self._skipped[path] = self._skipped_in(path) + skipped
        write_json_atomic(_state(path), {"offset": offset, "skipped_lines": self._skipped[path]})
        return offset


def _state(path: Path) -> Path:
    return path.with_suffix(STATE_SUFFIX)


def _content(run: _Run, record: dict[str, Any] | None) -> tuple[str, Any]:
    """A line's kind and what it asks for, checked: the points of a ``b`` line, the tags of a
    ``child`` or ``g`` line. ``MalformedLine`` if it is torn or does not fit the format."""
    record = whole(record)
    kind = record["t"]
    if kind == "b":
        return kind, run.points(record)
    if kind == "child":  # which process this was: rank0, rank1, process2...
        name, process = record.get("name"), str(record.get("process", ""))[:4900]
        return kind, {f"nbtrack.processes.{name}": process}
    if kind == "g":
        return kind, {str(k): str(v) for k, v in mapping(record, "g").items()}
    return kind, None
