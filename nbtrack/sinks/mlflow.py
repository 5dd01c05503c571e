"""The MLflow sink, kernel side: every batch goes to the run's spool file, in order.

Appending a line is all the kernel does per batch. The sync process started here uploads it
(see ``nbtrack.sync.worker``); cell end waits a bounded time for it, ``nbtrack.wait()`` and
kernel shutdown wait for everything.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from nbtrack.sync.spool import (
    HURRY_FILE,
    SessionInfo,
    encode,
    pack,
    pending_spools,
    process_start_ticks,
    read_json,
    spool_root,
)

if TYPE_CHECKING:
    from array import array

    from nbtrack.run import Run
    from nbtrack.sinks import Batch, MetricPoints

_EXIT_WAIT_S = 30.0


class SpoolSession:
    """This kernel's spool folder and the sync process that empties it (one per store)."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self.folder = spool_root() / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        self.folder.mkdir(parents=True)
        SessionInfo(
            folder=self.folder,
            kernel_pid=os.getpid(),
            kernel_start_ticks=process_start_ticks(os.getpid()),
            tracking_uri=tracking_uri,
        ).save()
        self._worker: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._counter = 0
        self.ensure_worker()

    def ensure_worker(self) -> None:
        """Start the sync process, or start it again if it died."""
        with self._lock:
            if self._worker is not None and self._worker.poll() is None:
                return
            log = (self.folder / "worker.log").open("ab")
            env = dict(os.environ)
            # The worker must import this very nbtrack, also from a source checkout.
            package_parent = str(Path(__file__).resolve().parents[2])
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (package_parent, env.get("PYTHONPATH")) if p
            )
            self._worker = subprocess.Popen(  # noqa: S603 - our own module, no shell
                [sys.executable, "-m", "nbtrack.sync.worker", str(self.folder)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                # Its own session: a kernel interrupt (SIGINT to the group) or restart must not
                # take the upload down with it.
                start_new_session=True,
                close_fds=True,
            )
            log.close()

    @property
    def worker_pid(self) -> int | None:
        return None if self._worker is None else self._worker.pid

    def new_spool(self) -> Path:
        self._counter += 1
        return self.folder / f"run{self._counter:04d}-{uuid.uuid4().hex[:6]}.spool"

    def wait(
        self, timeout: float | None, spool: Path | None = None, upto: dict[Path, int] | None = None
    ) -> bool:
        """Block until ``spool`` (or every spool) is uploaded; False on timeout.

        ``upto`` maps the spool of a run still being logged to the size it had when the wait
        began: that far is enough, since the run's spool itself lasts until the run ends.
        Interruptible: a KeyboardInterrupt stops the waiting, not the upload.
        """
        upto = upto or {}
        deadline = None if timeout is None else time.monotonic() + timeout
        # Someone waits: the sync process stops pacing the upload of runs still being logged.
        hurry = self.folder / HURRY_FILE
        with contextlib.suppress(OSError):  # a folder already removed has nothing to wait for
            hurry.touch()
        try:
            while True:
                remaining = [spool] if spool is not None else pending_spools(self.folder)
                if not any(p.exists() and not _acknowledged(p, upto.get(p)) for p in remaining):
                    return True
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                self.ensure_worker()
                time.sleep(0.02)
        finally:
            hurry.unlink(missing_ok=True)

    def pending_points(self, spool: Path | None, total: int) -> int:
        """About how many of a run's ``total`` points are not in the store yet (from how much
        of its spool the sync process acknowledged)."""
        if spool is None or not spool.exists():
            return 0
        state = read_json(spool.with_suffix(".state")) or {}
        size = spool.stat().st_size
        done = min(int(state.get("offset", 0)), size)
        return round(total * (size - done) / size) if size else 0

    def uploaded_run_id(self, spool: Path) -> str | None:
        """The MLflow id the sync process gave an offline run, once it has one."""
        state = read_json(spool.with_suffix(".state"))
        return None if state is None else state.get("run_id")


class SpoolSink:
    """Writes a run's batches to its spool file; the sync process does the rest."""

    def __init__(self, session: SpoolSession) -> None:
        self.session = session
        self.spool: Path | None = None
        self._out: BinaryIO | None = None

    def start(self, run: Run) -> None:
        self.session.ensure_worker()
        self.spool = self.session.new_spool()
        run.staging_dir = self.spool.with_suffix(".files")
        self._out = self.spool.open("ab")
        self._write(
            {
                "t": "start",
                "run_id": run.run_id,
                "experiment_id": run.experiment_id,
                "experiment_name": run.experiment_name,
                "run_name": run.run_name,
                "start_time": run.start_time_ms,
                # Tags given to create_run already; repeated for an offline run created later.
                "tags": run.tags,
            }
        )

    def update(self, run: Run, batch: Batch) -> None:  # noqa: ARG002 - part of the Sink protocol
        if batch.metrics:
            self._write(_metrics_line(batch.metrics))
        if batch.params:
            self._write({"t": "p", "p": batch.params})
        if batch.tags:
            self._write({"t": "g", "g": batch.tags})
        for path, destination in batch.artifacts:
            self._write({"t": "a", "path": str(path), "dest": destination})

    def end(self, run: Run) -> None:
        self._write(
            {
                "t": "end",
                "status": run.status.value,
                "end_time": run.end_time_ms,
            }
        )
        if self._out is not None:
            self._out.close()
            self._out = None

    def _write(self, record: dict[str, Any]) -> None:
        if self._out is None:
            return
        # One write per line and a flush: the line is in the OS before we go on, so a kernel
        # killed right after loses nothing that was written.
        self._out.write(encode(record))
        self._out.flush()


def _metrics_line(metrics: dict[str, MetricPoints]) -> dict[str, Any]:
    """A ``b`` spool line (format in ``nbtrack.sync.spool``): packed arrays, no per-point work."""
    times: list[array[float]] = []  # distinct time columns; metrics of the same calls share one
    encoded: dict[str, list[Any]] = {}
    for key, points in metrics.items():
        index = next((i for i, known in enumerate(times) if known is points.seconds), len(times))
        if index == len(times):
            times.append(points.seconds)
        steps = points.steps
        encoded[key] = [
            steps.start if isinstance(steps, range) else pack(steps),
            pack(points.values),
            index,
        ]
    return {"t": "b", "ts": [pack(column) for column in times], "m": encoded}


_sessions: dict[str, SpoolSession] = {}
_sessions_lock = threading.Lock()


def session_for(tracking_uri: str) -> SpoolSession:
    with _sessions_lock:
        session = _sessions.get(tracking_uri)
        if session is None:
            session = _sessions[tracking_uri] = SpoolSession(tracking_uri)
        return session


def adopt_orphans(tracking_uri: str) -> bool:
    """If dead kernels left spools for this store, start this kernel's sync process now: it
    replays them (ending those runs FAILED) before this kernel tracks anything. True if any."""
    from nbtrack.sync.spool import SessionInfo, is_orphan

    root = spool_root()
    if not root.is_dir():
        return False
    for folder in root.iterdir():
        info = SessionInfo.load(folder) if folder.is_dir() else None
        if info is not None and info.tracking_uri == tracking_uri and is_orphan(folder):
            session_for(tracking_uri)
            return True
    return False


def _acknowledged(spool: Path, size: int | None) -> bool:
    """Whether the sync process confirmed the first ``size`` bytes of ``spool`` as stored."""
    if size is None:
        return False
    state = read_json(spool.with_suffix(".state")) or {}
    return int(state.get("offset", 0)) >= size


def wait_all(timeout: float | None = None) -> bool:
    """Wait until every run of this kernel is stored; False if ``timeout`` ran out first.

    Called inside a tracked cell, it waits for what the running run logged so far.
    """
    from nbtrack import run as runs
    from nbtrack._sender import drain

    upto: dict[Path, int] = {}
    active = runs.current()
    if active is not None:
        drain(active)  # what the loop buffered goes to the spool before we measure it
        for sink in active.sinks:
            if isinstance(sink, SpoolSink) and sink.spool is not None and sink.spool.exists():
                upto[sink.spool] = sink.spool.stat().st_size
    deadline = None if timeout is None else time.monotonic() + timeout
    for session in list(_sessions.values()):
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not session.wait(left, upto=upto):
            return False
    return True


@atexit.register
def _wait_at_exit() -> None:
    # The sync process would finish on its own, but waiting here means a clean shutdown ends
    # with everything stored and the spool folder gone.
    if _sessions:
        wait_all(float(os.environ.get("NBTRACK_EXIT_WAIT", _EXIT_WAIT_S)))
