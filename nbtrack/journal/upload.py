"""Uploading one run's journal into MLflow, from where the last upload stopped.

Runs in the sync process, never in the kernel. The run is created from the journal's ``start``
line (and found again, not created twice, after a crash: it carries the journal's key as a
tag); metrics go in ``log_batch`` calls filled up to MLflow's limits; the ``end`` line ends it.
Progress is acknowledged in ``<run>.state`` after each call, so a restart resumes there and
replaying twice duplicates nothing. A torn line, or one not in the format, is skipped and counted
there too (a restart neither forgets nor recounts it): the run then ends FAILED, saying so.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbtrack._files import read_json, write_json_atomic
from nbtrack.journal.access import RunRefused, raise_refusal
from nbtrack.journal.children import ChildUploads
from nbtrack.journal.deletions import delete_artifact
from nbtrack.journal.ending import abandoned_reason, ended
from nbtrack.journal.folders import FILES_SUFFIX, STATE_SUFFIX, staged_artifact
from nbtrack.journal.format import (
    SKIPPED_LOG,
    End,
    MalformedLine,
    batch_columns,
    experiment_label,
    line_content,
    read_lines,
    start_fields,
)
from nbtrack.journal.inflight import InFlight
from nbtrack.journal.preview import Preview
from nbtrack.journal.store_errors import StoreUnavailable, error_line, keep_rejected, permanent
from nbtrack.tracking import ExperimentDeletedError, create_run, run_experiment, run_info

__all__ = ["MAX_METRICS_PER_BATCH", "RunUploader"]

log = logging.getLogger("nbtrack.sync")

# MLflow's log_batch limits (mlflow.utils.validation): 1000 metrics, 100 params, 100 tags per call.
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = MAX_TAGS_PER_BATCH = 100
_READ_CHUNK = 4 * 1024 * 1024
_REFUSED_RETRY_S = 30.0  # a run refused for a reason the user can fix: tried again this often
# What ``<run>.state`` keeps of an upload's progress (read back by __init__).
_KEPT = ("offset", "skipped_lines", "run_id", "experiment_id", "experiment_name", "run_info",
         "start", "last_timestamp_ms", "problem", "created_late")  # fmt: skip


class RunUploader:
    """Uploads one journal (``<run>.spool``), resuming from its acknowledged offset."""

    def __init__(
        self,
        spool: Path,
        client: Any,
        experiments: dict[str, str],
        inflight: InFlight | None = None,
    ) -> None:
        self.spool = spool
        # The run id of the parent journal a start line names (nbtrack.journal.parents).
        self.parents: Callable[[str], str | None] | None = None
        self.client = client
        # How many log_batch requests to keep in flight, learnt per store (shared by its runs).
        self.inflight = inflight or InFlight()
        self.experiments = experiments  # name -> id, shared by the uploaders of one store
        self.state_path = spool.with_suffix(STATE_SUFFIX)
        state = read_json(self.state_path) or {}
        self.offset: int = int(state.get("offset", 0))
        self.run_id: str | None = state.get("run_id")
        self.experiment_id: str | None = state.get("experiment_id")
        self.experiment_name: str | None = state.get("experiment_name")  # for the kernel
        self.run_info: dict[str, Any] | None = state.get("run_info")  # for tracking.attach
        self.start: dict[str, Any] | None = state.get("start")
        self.last_timestamp_ms: int | None = state.get("last_timestamp_ms")
        self.problem: str | None = None
        # Set when the store could not be reached to create the run: it is then created late,
        # and tagged so (kept in the state: another sync process may create it).
        self.created_late = bool(state.get("created_late"))
        self.retry_at = 0.0
        self.ended = False
        # Lines skipped up to the acknowledged offset: kept with it, so a restart still counts them.
        self.skipped_lines = int(state.get("skipped_lines") or 0)
        self.children = ChildUploads(spool)  # other processes': workers, distributed ranks
        # The newest points, sent ahead while the upload is paced (what MLflow's UI shows).
        self.preview = Preview()

    @property
    def key(self) -> str:
        return self.spool.stem

    @property
    def created(self) -> bool:
        return self.run_id is not None

    def step(self, max_points: int | None = None) -> bool:
        """Upload what is new in the journal, or about ``max_points`` of it (whole lines).
        True if something was uploaded. Raises StoreUnavailable to be retried later."""
        if time.monotonic() < self.retry_at:
            return False
        try:
            return self._step(max_points)
        except (ExperimentDeletedError, RunRefused, MalformedLine) as error:
            self._refused(str(error))
            return False

    def _step(self, max_points: int | None) -> bool:
        # As large as MLflow takes (several in flight where that pays), or a paced piece's size.
        batch = min(MAX_METRICS_PER_BATCH * self.inflight.width, max_points or sys.maxsize)
        progressed, sent = self.children.step(self, batch, max_points)
        if max_points is not None and sent >= max_points:
            return True
        metrics: list[Any] = []
        consumed = self.offset
        skipped = 0  # since the acknowledged offset: counted as it moves past them, only then
        for record, end_offset in read_lines(self.spool, self.offset, _READ_CHUNK):
            kind = "" if record is None else record["t"]
            try:
                content = (
                    self.points(record)
                    if record is not None and kind == "b"
                    else line_content(kind, record)
                )
            except MalformedLine as error:
                skipped += 1
                log.warning(SKIPPED_LOG, self.key, consumed, error)
                if kind != "end":
                    consumed = end_offset
                    continue
                # The kernel did end the run: it ends, FAILED, whatever its last line says.
                content = End("FAILED", self.last_timestamp_ms or int(time.time() * 1000))
            if kind == "b":
                metrics.extend(content)
                if len(metrics) >= batch:
                    self.send_metrics(metrics)
                    sent += len(metrics)
                    metrics = []
                    self._ack(end_offset, skipped)
                    skipped = 0
                    consumed = end_offset
                    progressed = True
                    if max_points is not None and sent >= max_points:
                        return True
                    continue
            else:
                # Everything but metrics is applied in order, after the metrics before it.
                self.send_metrics(metrics)
                metrics = []
                if kind == "end":  # the run's other processes first: all of it
                    self.children.step(self, batch)
                self._apply(kind, content, skipped)
                self._ack(end_offset, skipped)
                skipped = 0
                progressed = True
            consumed = end_offset
        if metrics:
            self.send_metrics(metrics)
        if consumed != self.offset:
            self._ack(consumed, skipped)
            progressed = True
        return progressed

    def create(self) -> bool:
        """Create the run as soon as its start line is there (not paced: a person may be
        waiting for its link). True if it exists now."""
        if self.run_id is not None:
            return True
        if self.start is None:
            for record, end_offset in read_lines(self.spool, self.offset, 64 * 1024):
                if record is not None and record["t"] == "start":
                    self.start = record
                    self._ack(end_offset)
                break
        if self.start is None or time.monotonic() < self.retry_at:
            return False
        try:
            self._run_id()
        except (ExperimentDeletedError, RunRefused, MalformedLine) as error:
            self._refused(str(error))
            return False
        return True

    def points(self, record: dict[str, Any]) -> list[Any]:
        """A ``b`` line's points as MLflow metrics, less those the preview sent ahead."""
        from mlflow.entities import Metric

        out: list[Any] = []
        for key, steps, values, seconds in batch_columns(record):
            out.extend(
                Metric(key, v, int(t * 1000), s)
                for s, v, t in zip(steps, values, seconds, strict=True)
            )
            if values:
                self.last_timestamp_ms = max(self.last_timestamp_ms or 0, int(seconds[-1] * 1000))
        return self.preview.skip_sent(out)

    def send_preview(self) -> None:
        """The newest point of each metric, ahead of the paced rest (``preview.py``)."""
        metrics = self.preview.newest(self.spool)[:MAX_METRICS_PER_BATCH]
        if metrics:
            self._call("log_batch", self._run_id(), metrics=metrics)
            self.preview.sent_ahead(metrics)  # not reached if the store did not take them

    def send_metrics(self, metrics: list[Any]) -> None:
        """Metrics in ``log_batch`` calls of up to 1000, several in flight where the store's
        speed asks for it (``inflight.py``)."""
        if not metrics:
            return
        run_id = self._run_id()
        size = MAX_METRICS_PER_BATCH
        chunks = [metrics[first : first + size] for first in range(0, len(metrics), size)]
        self.inflight.send(lambda chunk: self._call("log_batch", run_id, metrics=chunk), chunks)

    def _apply(self, kind: str, content: Any, skipped: int) -> None:
        """Send what a line asked for (``content``, checked); ``skipped``: lines skipped
        since the acknowledged offset, which an end line counts too."""
        from mlflow.entities import Param

        if kind == "start":
            self.start = content
            self._run_id()
        elif kind == "p":
            params = [Param(k, str(v)) for k, v in content.items()]
            self._send_in_chunks("params", params, MAX_PARAMS_PER_BATCH)
        elif kind == "g":
            self.send_tags(content)
        elif kind == "a":
            self._artifact(*content)
        elif kind == "x":
            self._delete_artifact(content)
        elif kind == "end":
            self._end(content, self.skipped_lines + skipped + self.children.skipped)

    def send_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        entities = [RunTag(k, str(v)) for k, v in tags.items()]
        self._send_in_chunks("tags", entities, MAX_TAGS_PER_BATCH)

    def _send_in_chunks(self, field: str, entities: list[Any], size: int) -> None:
        for first in range(0, len(entities), size):
            self._call("log_batch", self._run_id(), **{field: entities[first : first + size]})

    def _artifact(self, relative: str, destination: str | None) -> None:
        path = staged_artifact(self.spool, relative)
        if path is not None:
            method = "log_artifacts" if path.is_dir() else "log_artifact"
            self._call(method, self._run_id(), str(path), destination)

    def _delete_artifact(self, artifact: str) -> None:
        run = self._call("get_run", self._run_id())
        try:
            if run is not None:
                delete_artifact(run.info.artifact_uri, self.client.tracking_uri, artifact, self.key)
        except Exception as error:
            raise StoreUnavailable(f"delete_artifacts: {error_line(error)}") from error

    def _end(self, end: End, skipped: int) -> None:
        # What was never made durable, or cannot be read back, cannot be uploaded: the run says
        # so, and is not reported as a clean success (ending.py).
        status, tags = ended(end, skipped)
        if tags:
            self.send_tags(tags)
        self._call("set_terminated", self._run_id(), status, end.end_time)
        self.ended = True

    def finish_abandoned(self, reason: str) -> bool:
        """End a run whose kernel died before the cell did: FAILED, tagged with why. False
        when the journal must be kept: its start line cannot be read, so no run can be made."""
        if self.start is None and self.run_id is None:  # no start line, or none to read
            if self.skipped_lines:  # unreadable: never thrown away
                self._refused(f"its start line cannot be read; it stays in {self.spool}")
            return not self.skipped_lines
        reason = abandoned_reason(reason, self.skipped_lines + self.children.skipped)
        self.send_tags({"nbtrack.end_reason": reason})
        end = self.last_timestamp_ms or int(time.time() * 1000)
        self._call("set_terminated", self._run_id(), "FAILED", end)
        self.ended = True
        return True

    def _run_id(self) -> str:
        if self.run_id is None:
            if self.start is None:  # torn: nothing says where, or under which name, to create it
                msg = f"the journal has data before its start line; it is kept in {self.spool}"
                raise MalformedLine(msg)
            self._create(self.start)
        assert self.run_id is not None  # noqa: S101 - set by _create or it raised
        return self.run_id

    def _create(self, record: dict[str, Any]) -> None:
        try:
            start = start_fields(record)
        except MalformedLine as error:
            msg = f"its start line is {error}: no run can be made; it stays in {self.spool}"
            raise MalformedLine(msg) from error
        experiment, name = self._store(
            run_experiment,
            self.client,
            start.experiment_name,
            start.experiment_id,
            self.experiments,
        )
        # A crash between creating the run and saving its id must not create it twice: the
        # run carries the journal's key as a tag, looked up before creating.
        found = self._call(
            "search_runs",
            [experiment],
            filter_string=f"tags.`nbtrack.spool_key` = '{self.key}'",
            max_results=1,
        )
        if found:
            self.run_info = run_info(found[0])
        else:
            tags = {**start.tags, "nbtrack.spool_key": self.key}
            parent = start.parent and self.parents and self.parents(start.parent)
            if parent:
                tags["mlflow.parentRunId"] = parent
            if self.created_late:
                tags["nbtrack.offline"] = "true"
            self.run_info = self._store(
                create_run,
                self.client,
                experiment,
                run_name=start.run_name,
                start_time=start.start_time,
                tags=tags,
            )
        self.run_id = str(self.run_info["run_id"])
        self.experiment_id, self.experiment_name = experiment, name
        self.problem = None
        self._ack(self.offset)

    def _refused(self, problem: str) -> None:
        """No run for this journal now (refused by the store, or no start line to make one)."""
        if problem != self.problem:
            log.error("journal %s: %s", self.key, problem)
        self.problem = problem
        self.retry_at = time.monotonic() + _REFUSED_RETRY_S
        self._ack(self.offset)

    def _store(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """A call to the store; what no retry can fix stays as it is, the rest is retried."""
        name = str(getattr(func, "__name__", func))
        try:
            return func(*args, **kwargs)
        except ExperimentDeletedError:
            raise
        except Exception as error:
            self._raise_refusal(name, error)
            raise StoreUnavailable(f"{name}: {error_line(error)}") from error

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except Exception as error:
            self._raise_refusal(method, error)
            if permanent(error):
                keep_rejected(self.spool, method, args, kwargs, error)
                return None
            raise StoreUnavailable(f"{method}: {error_line(error)}") from error

    def _raise_refusal(self, method: str, error: Exception) -> None:
        experiment = experiment_label(self.start or {})
        # The client's URI, credentials included, so that a refusal names the user in it.
        uri = getattr(self.client, "tracking_uri", "")
        raise_refusal(method, error, experiment, uri if isinstance(uri, str) else "")

    def _ack(self, offset: int, skipped: int = 0) -> None:
        """Progress up to ``offset``, and the lines ``skipped`` before it, made durable."""
        self.offset = offset
        self.skipped_lines += skipped
        write_json_atomic(self.state_path, {name: getattr(self, name) for name in _KEPT})

    def mark_created_late(self) -> None:
        """The store could not be reached to create the run in time."""
        if not self.created_late and self.run_id is None:
            self.created_late = True
            self._ack(self.offset)

    def remove(self) -> None:
        """The run is in the store and ended: its journal is no longer needed. What the kernel
        still needs to know (the run's id) stays in ``<run>.done``."""
        self.children.remove()
        shutil.rmtree(self.spool.with_suffix(FILES_SUFFIX), ignore_errors=True)  # if staged
        # The journal goes first: on a full disk, that is what makes room for the note.
        self.spool.unlink(missing_ok=True)
        self.state_path.unlink(missing_ok=True)
        try:
            write_json_atomic(
                self.spool.with_suffix(".done"),
                {key: getattr(self, key) for key in ("run_id", "experiment_id", "experiment_name")},
            )
        except OSError as error:  # the kernel learnt the run's id from the state file
            log.warning("journal %s: cannot leave its .done note: %s", self.key, error)
