"""The sync process: uploads a kernel's spools into MLflow, outside the kernel's interpreter.

Started by the kernel (``python -m nbtrack.sync.worker SESSION_FOLDER``) in its own process
session so that interrupting or restarting the kernel does not touch it. It uploads with one
reused ``MlflowClient``, in ``log_batch`` calls filled up to MLflow's limits, retries with
backoff while the store is unreachable, and outlives its kernel: when the kernel dies it
finishes the upload and ends unfinished runs as FAILED instead of leaving them RUNNING.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

from nbtrack.sync.spool import (
    HURRY_FILE,
    STATE_SUFFIX,
    SessionInfo,
    SessionLock,
    is_orphan,
    pending_spools,
    read_json,
    read_lines,
    run_ended,
    spool_root,
    unpack,
    write_json_atomic,
)

log = logging.getLogger("nbtrack.sync")

# MLflow's log_batch limits (mlflow.utils.validation): 1000 metrics, 100 params, 100 tags per call.
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
_READ_CHUNK = 4 * 1024 * 1024
_POLL_S = 0.05
# Share of one CPU core the upload of a run may use while its cell is still executing.
_DEFAULT_CPU_SHARE = 0.05
# What a cell's first paced piece is assumed to cost (~1000 points into SQLite): a cell's
# upload starts after the rest this earns, 0.95 s at the default share.
_FIRST_PIECE_CPU_S = 0.05
# MLflow error codes that no retry will fix; anything else (connection refused, 5xx, a locked
# SQLite file) is worth retrying.
_PERMANENT_ERRORS = frozenset(
    {
        "INVALID_PARAMETER_VALUE",
        "RESOURCE_DOES_NOT_EXIST",
        "INVALID_STATE",
        "BAD_REQUEST",
        "RESOURCE_ALREADY_EXISTS",
    }
)


class StoreUnavailable(Exception):
    """The store did not accept a request; retry later."""


def _permanent(error: Exception) -> bool:
    return getattr(error, "error_code", None) in _PERMANENT_ERRORS


class RunReplayer:
    """Uploads one ``.spool`` file, resuming from its acknowledged offset."""

    def __init__(self, spool: Path, client: Any) -> None:
        self.spool = spool
        self.client = client
        self.state_path = spool.with_suffix(STATE_SUFFIX)
        state = read_json(self.state_path) or {}
        self.offset: int = int(state.get("offset", 0))
        self.run_id: str | None = state.get("run_id")
        self.start: dict[str, Any] | None = state.get("start")
        self.ended = False
        self.last_timestamp_ms: int | None = state.get("last_timestamp_ms")
        self.points_sent = 0

    @property
    def key(self) -> str:
        return self.spool.stem

    def step(self, max_points: int | None = None) -> bool:
        """Upload what is new in the spool, or about ``max_points`` of it (whole lines).

        True if something was uploaded.
        """
        progressed = False
        metrics: list[Any] = []
        consumed = self.offset
        sent = 0
        for record, end_offset in read_lines(self.spool, self.offset, _READ_CHUNK):
            kind = record["t"]
            if kind == "b":
                metrics.extend(self._packed(record))
                consumed = end_offset
                if len(metrics) >= MAX_METRICS_PER_BATCH:
                    self._send_metrics(metrics)
                    sent += len(metrics)
                    metrics = []
                    self._ack(end_offset)
                    if max_points is not None and sent >= max_points:
                        return True
                continue
            # Everything but metrics is applied in order, after the metrics before it.
            self._send_metrics(metrics)
            metrics = []
            self._apply(kind, record)
            self._ack(end_offset)
            consumed = end_offset
            progressed = True
        if metrics:
            self._send_metrics(metrics)
        if consumed != self.offset:
            self._ack(consumed)
            progressed = True
        return progressed

    def _packed(self, record: dict[str, Any]) -> list[Any]:
        from mlflow.entities import Metric

        times = [unpack(column, "d") for column in record["ts"]]
        out: list[Any] = []
        for key, (packed_steps, packed_values, index) in record["m"].items():
            values, seconds = unpack(packed_values, "d"), times[index]
            steps = (
                range(packed_steps, packed_steps + len(values))
                if isinstance(packed_steps, int)
                else unpack(packed_steps, "q")
            )
            out.extend(
                Metric(key, v, int(t * 1000), s)
                for s, v, t in zip(steps, values, seconds, strict=True)
            )
            if values:
                self.last_timestamp_ms = max(self.last_timestamp_ms or 0, int(seconds[-1] * 1000))
        return out

    def _send_metrics(self, metrics: list[Any]) -> None:
        for first in range(0, len(metrics), MAX_METRICS_PER_BATCH):
            chunk = metrics[first : first + MAX_METRICS_PER_BATCH]
            self._call("log_batch", self._run_id(), metrics=chunk)
            self.points_sent += len(chunk)

    def _apply(self, kind: str, record: dict[str, Any]) -> None:
        from mlflow.entities import Param, RunTag

        if kind == "start":
            self.start = record
            if record.get("run_id"):
                self.run_id = record["run_id"]
            else:
                self._create_run(record)
        elif kind == "p":
            items = [Param(k, str(v)) for k, v in record["p"].items()]
            for first in range(0, len(items), MAX_PARAMS_PER_BATCH):
                self._call(
                    "log_batch", self._run_id(), params=items[first : first + MAX_PARAMS_PER_BATCH]
                )
        elif kind == "g":
            tags = [RunTag(k, str(v)) for k, v in record["g"].items()]
            for first in range(0, len(tags), MAX_TAGS_PER_BATCH):
                self._call(
                    "log_batch", self._run_id(), tags=tags[first : first + MAX_TAGS_PER_BATCH]
                )
        elif kind == "a":
            path = Path(record["path"])
            if path.is_dir():
                self._call("log_artifacts", self._run_id(), str(path), record.get("dest"))
            elif path.exists():
                self._call("log_artifact", self._run_id(), str(path), record.get("dest"))
            else:
                log.warning("artifact %s vanished before upload; skipped", path)
        elif kind == "end":
            self._end(record["status"], int(record["end_time"]))

    def _end(self, status: str, end_time_ms: int) -> None:
        self._call("set_terminated", self._run_id(), status, end_time_ms)
        self.ended = True

    def finish_abandoned(self, reason: str) -> None:
        """End a run whose kernel died before the cell did: FAILED, tagged with why."""
        from mlflow.entities import RunTag

        if self.start is None and self.run_id is None:
            return  # the kernel died before the run's first line reached disk: nothing to end
        self._call(
            "log_batch",
            self._run_id(),
            tags=[RunTag("nbtrack.end_reason", reason)],
        )
        end = self.last_timestamp_ms or int(time.time() * 1000)
        self._end("FAILED", end)

    def _run_id(self) -> str:
        if self.run_id is None:
            if self.start is None:
                msg = f"spool {self.spool} has data before its start line"
                raise RuntimeError(msg)
            self._create_run(self.start)
        assert self.run_id is not None  # noqa: S101 - set by _create_run or it raised
        return self.run_id

    def _create_run(self, start: dict[str, Any]) -> None:
        """Create a run that was started while the store was unreachable (offline)."""
        # A crash between creating the run and saving its id must not create it twice:
        # the run carries the spool's key as a tag, looked up before creating.
        experiment_id = self._experiment_id(start["experiment_name"])
        found = self._call(
            "search_runs",
            [experiment_id],
            filter_string=f"tags.`nbtrack.spool_key` = '{self.key}'",
            max_results=1,
        )
        if found:
            self.run_id = found[0].info.run_id
        else:
            tags = dict(start.get("tags", {}))
            tags["nbtrack.spool_key"] = self.key
            tags["nbtrack.offline"] = "true"
            run = self._call(
                "create_run",
                experiment_id,
                start_time=start["start_time"],
                tags=tags,
                run_name=start.get("run_name"),
            )
            self.run_id = run.info.run_id
        self._ack(self.offset)

    def _experiment_id(self, name: str | None) -> str:
        if not name:
            return "0"
        experiment = self._call("get_experiment_by_name", name)
        if experiment is not None:
            return str(experiment.experiment_id)
        try:
            return str(self._call("create_experiment", name))
        except Exception as error:
            if getattr(error, "error_code", None) == "RESOURCE_ALREADY_EXISTS":
                return str(self._call("get_experiment_by_name", name).experiment_id)
            raise

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except Exception as error:
            if _permanent(error):
                self._reject(method, args, kwargs, error)
                return None
            raise StoreUnavailable(f"{method}: {error}") from error

    def _reject(self, method: str, args: Any, kwargs: Any, error: Exception) -> None:
        """Keep what the store refused for good, with the reason, instead of dropping it."""
        with self.spool.with_suffix(".rejected").open("a") as out:
            out.write(f"{time.time():.3f} {method} refused: {error}\n  args={args!r:.2000}\n")
            out.write(f"  kwargs={kwargs!r:.100000}\n")
        log.error("store refused %s for %s: %s (kept in .rejected)", method, self.key, error)

    def _ack(self, offset: int) -> None:
        self.offset = offset
        write_json_atomic(
            self.state_path,
            {
                "offset": offset,
                "run_id": self.run_id,
                "start": self.start,
                "last_timestamp_ms": self.last_timestamp_ms,
            },
        )

    def remove(self) -> None:
        """The run is in the store and ended: its spool is no longer needed."""
        files = self.spool.with_suffix(".files")
        if files.exists():
            shutil.rmtree(files, ignore_errors=True)
        self.state_path.unlink(missing_ok=True)
        # The spool goes last: the kernel takes its disappearance as "all synced".
        self.spool.unlink(missing_ok=True)


class Pacer:
    """Keeps the upload of a run whose cell is still executing under a share of one CPU core.

    MLflow's client costs ~100 us of CPU per point into SQLite, so a loop logging thousands of
    points a second would keep the sync process busy on a core of its own: about two thirds of a
    core for bench_loop's 6,500 points/s. On a small or shared machine that core is not free.
    The points are safe in the spool already, so while the cell runs the upload only keeps
    MLflow's view fresh: after a piece of work costing c CPU seconds it rests c * (1/share - 1).
    A run whose cell ended, a dead kernel and ``nbtrack.wait()`` get the upload at full speed.
    """

    def __init__(self, share: float) -> None:
        self.share = share
        self.resume_at = 0.0

    @classmethod
    def from_env(cls) -> Pacer:
        text = os.environ.get("NBTRACK_SYNC_CPU_SHARE", "")
        try:
            share = float(text) if text else _DEFAULT_CPU_SHARE
        except ValueError:
            share = -1.0
        if not 0 < share <= 1:
            log.warning(
                "NBTRACK_SYNC_CPU_SHARE=%r is not a number in (0, 1]; using %s",
                text,
                _DEFAULT_CPU_SHARE,
            )
            share = _DEFAULT_CPU_SHARE
        return cls(share)

    def ready(self) -> bool:
        return time.monotonic() >= self.resume_at

    def hold(self) -> None:
        """Rest before a newly running cell's first piece as after any other: otherwise every
        cell starts with a piece at full speed, which for cells of a few seconds alone came to
        more than the share (bench_loop: 12.7 % of a core at a 5 % share)."""
        self.resume_at = max(self.resume_at, time.monotonic() + self._rest(_FIRST_PIECE_CPU_S))

    def spent(self, cpu_s: float) -> None:
        self.resume_at = time.monotonic() + self._rest(cpu_s)

    def _rest(self, cpu_s: float) -> float:
        return cpu_s * (1 / self.share - 1)


class SessionUploader:
    """Uploads every spool of one session folder."""

    def __init__(self, info: SessionInfo, client: Any, pacer: Pacer | None = None) -> None:
        self.info = info
        self.client = client
        self.pacer = pacer
        self.replayers: dict[Path, RunReplayer] = {}
        self.backoff_s = 0.0
        self.max_backoff_s = float(os.environ.get("NBTRACK_RETRY_MAX_S", "30"))
        self.retry_at = 0.0

    def _pacer_for(self, spool: Path) -> Pacer | None:
        """The pacer, if this spool's run is still being logged by a live kernel nobody waits
        for; None means full speed."""
        pacer = self.pacer
        if (
            pacer is None
            or pacer.share >= 1
            or (self.info.folder / HURRY_FILE).exists()
            or run_ended(spool)
        ):
            return None
        return pacer

    def step(self) -> bool:
        """One pass over the session's spools; True if anything was uploaded."""
        if time.monotonic() < self.retry_at:
            return False
        progressed = False
        try:
            for spool in pending_spools(self.info.folder):
                replayer = self.replayers.get(spool)
                pacer = self._pacer_for(spool)
                if replayer is None:
                    replayer = self.replayers[spool] = RunReplayer(spool, self.client)
                    if pacer is not None:
                        pacer.hold()
                if pacer is not None:
                    if not pacer.ready():
                        continue
                    cpu = time.thread_time()
                    progressed |= replayer.step(max_points=MAX_METRICS_PER_BATCH)
                    pacer.spent(time.thread_time() - cpu)
                else:
                    progressed |= replayer.step()
                if replayer.ended:
                    replayer.remove()
                    del self.replayers[spool]
        except StoreUnavailable as error:
            self.backoff_s = min(max(0.25, self.backoff_s * 2), self.max_backoff_s)
            self.retry_at = time.monotonic() + self.backoff_s
            log.warning("store unavailable, retrying in %.1fs: %s", self.backoff_s, error)
            return False
        self.backoff_s = 0.0
        return progressed

    def finish_abandoned(self) -> None:
        """After the kernel died and everything spooled is uploaded: end what it left running."""
        reason = (
            f"kernel (pid {self.info.kernel_pid}) died before the cell finished; nbtrack "
            "uploaded every point it had spooled"
        )
        for spool in pending_spools(self.info.folder):
            replayer = self.replayers.get(spool) or RunReplayer(spool, self.client)
            replayer.step()
            if not replayer.ended:
                replayer.finish_abandoned(reason)
            replayer.remove()
            self.replayers.pop(spool, None)

    def drain_all(self, deadline: float | None = None) -> None:
        """Upload until nothing is left (kernel gone), retrying while the store is down."""
        while True:
            try:
                if not any(True for _ in pending_spools(self.info.folder)):
                    return
                while self.step():
                    pass
                if time.monotonic() >= self.retry_at:
                    self.finish_abandoned()
                    return
            except StoreUnavailable as error:
                self.backoff_s = min(max(0.25, self.backoff_s * 2), self.max_backoff_s)
                self.retry_at = time.monotonic() + self.backoff_s
                log.warning("store unavailable, retrying in %.1fs: %s", self.backoff_s, error)
            if deadline is not None and time.monotonic() > deadline:
                return
            time.sleep(max(_POLL_S, self.retry_at - time.monotonic()))


def make_client(tracking_uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def recover_orphans(
    tracking_uri: str | None, skip: Path | None = None, give_up_after_s: float | None = None
) -> list[str]:
    """Replay every orphaned session (of ``tracking_uri`` if given). Returns what was done.

    With ``give_up_after_s``, a session whose store stays unreachable that long is kept for a
    later try instead of being waited for.
    """
    done: list[str] = []
    root = spool_root()
    if not root.exists():
        return done
    clients: dict[str, Any] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder == skip or not is_orphan(folder):
            continue
        info = SessionInfo.load(folder)
        if info is None:
            if not any(folder.iterdir()):
                folder.rmdir()
            continue
        if tracking_uri is not None and info.tracking_uri != tracking_uri:
            continue
        lock = SessionLock(folder)
        if not lock.acquire():
            continue
        try:
            client = clients.get(info.tracking_uri) or make_client(info.tracking_uri)
            clients[info.tracking_uri] = client
            uploader = SessionUploader(info, client)
            spools = pending_spools(folder)
            deadline = None if give_up_after_s is None else time.monotonic() + give_up_after_s
            uploader.drain_all(deadline)
            if not pending_spools(folder):
                done.append(f"{folder.name}: {len(spools)} run(s) uploaded to {info.tracking_uri}")
                shutil.rmtree(folder, ignore_errors=True)
            else:
                done.append(f"{folder.name}: store unreachable, kept for a later `nbtrack sync`")
        finally:
            lock.release()
    return done


def run_worker(folder: Path) -> int:
    """Main loop of a kernel's sync process."""
    lock = SessionLock(folder)
    if not lock.acquire():
        log.info("another sync process already uploads %s", folder)
        return 0
    info = SessionInfo.load(folder)
    if info is None:
        log.error("no session.json in %s", folder)
        return 1
    client = make_client(info.tracking_uri)
    # Spools of earlier kernels that died on the same store are picked up here, off the main loop.
    threading.Thread(
        target=recover_orphans, args=(info.tracking_uri, folder), name="orphans", daemon=True
    ).start()
    pacer = Pacer.from_env()
    uploader = SessionUploader(info, client, pacer)
    idle_polls = 0
    while True:
        alive = info.kernel_alive()
        uploader.pacer = pacer if alive else None
        progressed = uploader.step()
        if not progressed and not alive:
            uploader.drain_all()
            if not pending_spools(folder):
                break
            time.sleep(1.0)
            continue
        idle_polls = 0 if progressed else idle_polls + 1
        # Poll fast while data flows (cell end waits on us), slower when idle.
        time.sleep(_POLL_S if idle_polls < 100 else 0.25)
    lock.release()
    shutil.rmtree(folder, ignore_errors=True)
    return 0


def main() -> int:
    folder = Path(sys.argv[1])
    # MLflow's client costs ~110 us of CPU per point; on a busy machine that CPU should go to
    # the training loop first. The upload catches up when the loop leaves room (or at its end).
    os.nice(int(os.environ.get("NBTRACK_SYNC_NICE", "10")))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s nbtrack.sync: %(message)s"
    )
    return run_worker(folder)


if __name__ == "__main__":
    # The worker does its own retries with backoff; MLflow's internal HTTP retries (up to 7,
    # minutes long) would hide an outage from it and stall every other run behind one request.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    sys.exit(main())
