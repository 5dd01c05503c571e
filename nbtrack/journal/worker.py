"""The sync process: uploads a kernel's journals into MLflow, outside the kernel's interpreter.

Started by the kernel (``python -m nbtrack.journal.worker SESSION_FOLDER``) in its own process
session, so that interrupting or restarting the kernel does not touch it. It creates each run
as soon as its journal starts, uploads with one reused ``MlflowClient`` in ``log_batch`` calls
filled up to MLflow's limits, paces itself while a cell still runs, retries with backoff while
the store is unreachable (and says so in ``status.json``), and survives any store error. It
outlives its kernel: when the kernel dies it finishes the upload and ends unfinished runs
FAILED instead of leaving them RUNNING. Journals of earlier kernels that died on the same
store are replayed too.
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

from nbtrack import _platform
from nbtrack._files import write_json_atomic
from nbtrack._redact import redact_text, strip_uri_credentials
from nbtrack._settings import settings
from nbtrack.journal.folders import (
    HURRY_FILE,
    STATUS_FILE,
    SessionInfo,
    SessionLock,
    is_orphan,
    pending_spools,
    session_folders,
    spool_root,
)
from nbtrack.journal.format import run_ended
from nbtrack.journal.pacer import Pacer
from nbtrack.journal.system import SystemSampling
from nbtrack.journal.upload import MAX_METRICS_PER_BATCH, RunUploader, StoreUnavailable
from nbtrack.tracking import make_client

__all__ = ["main", "recover_orphans", "run_worker"]

log = logging.getLogger("nbtrack.sync")

_POLL_S = 0.05
_IDLE_POLL_S = 0.25


class Backoff:
    """Growing pauses while the store is unreachable: 0.25 s, doubling up to ``longest``
    (default ``NBTRACK_RETRY_MAX_S``)."""

    def __init__(self, longest: float | None = None) -> None:
        self.longest = longest
        self.pause = 0.0
        self.retry_at = 0.0

    def failed(self) -> float:
        longest = self.longest if self.longest is not None else settings().retry_max_s
        self.pause = min(max(0.25, self.pause * 2), longest)
        self.retry_at = time.monotonic() + self.pause
        return self.pause

    def succeeded(self) -> None:
        self.pause = 0.0
        self.retry_at = 0.0

    def ready(self) -> bool:
        return time.monotonic() >= self.retry_at


class SessionUploader:
    """Uploads every journal of one session folder, and tells the kernel how the store is."""

    def __init__(
        self,
        info: SessionInfo,
        pacer: Pacer | None = None,
        longest_pause: float | None = None,
        system_interval: float = 0.0,
    ) -> None:
        self.info = info
        # System metrics of the runs a live kernel is executing, every system_interval seconds
        # (0: none, as for the journals of dead kernels).
        self.system = SystemSampling(info.tracking_uri, system_interval)
        self.pacer = pacer
        self.client: Any = None
        self.uploaders: dict[Path, RunUploader] = {}
        self.experiments: dict[str, str] = {}
        self.backoff = Backoff(longest_pause)
        self._problem: str | None = None

    def step(self) -> bool:
        """One pass over the session's journals; True if anything was uploaded."""
        if not self.backoff.ready():
            return False
        try:
            progressed = self._step()
        except StoreUnavailable as error:
            self._unreachable(str(error))
            return False
        self.backoff.succeeded()
        self._report(None)
        return progressed

    def _step(self) -> bool:
        if self.client is None:
            self.client = self._connect()
        progressed = False
        spools = pending_spools(self.info.folder)
        for spool in spools:  # runs first: a person may be waiting for a new run's link
            uploader = self._uploader(spool)
            self.system.follow(spool, uploader.run_id, self.client)
            progressed |= not uploader.created and uploader.create()
        for spool in spools:
            uploader = self._uploader(spool)
            if not uploader.created:
                continue
            self.system.follow(spool, uploader.run_id, self.client)
            pacer = self._pacer_for(spool)
            if pacer is not None:
                if not pacer.ready():
                    continue
                cpu = time.thread_time()
                progressed |= uploader.step(max_points=MAX_METRICS_PER_BATCH)
                pacer.spent(time.thread_time() - cpu)
            else:
                progressed |= uploader.step()
            if uploader.ended:
                # Before the run is reported stored: its energy must be in the record.
                self.system.stop(spool, self.client)
                uploader.remove()
                del self.uploaders[spool]
        return progressed

    def stop_system_metrics(self) -> None:
        """The kernel is gone: stop every monitor (their last samples are logged)."""
        self.system.stop_all(self.client)

    def _connect(self) -> Any:
        try:
            return make_client(self.info.tracking_uri)
        except Exception as error:
            msg = f"opening the store: {type(error).__name__}: {error}"
            raise StoreUnavailable(redact_text(msg.splitlines()[0])[:500]) from error

    def _uploader(self, spool: Path) -> RunUploader:
        uploader = self.uploaders.get(spool)
        if uploader is None:
            uploader = self.uploaders[spool] = RunUploader(spool, self.client, self.experiments)
            if self.pacer is not None and not run_ended(spool):
                self.pacer.hold()
        return uploader

    def _pacer_for(self, spool: Path) -> Pacer | None:
        """The pacer, if this journal's run is still being logged by a live kernel nobody
        waits for; None means full speed."""
        pacer = self.pacer
        if (
            pacer is None
            or pacer.share >= 1
            or (self.info.folder / HURRY_FILE).exists()
            or run_ended(spool)
        ):
            return None
        return pacer

    def _unreachable(self, problem: str) -> None:
        for uploader in self.uploaders.values():
            if not uploader.created:
                uploader.created_late = True
        pause = self.backoff.failed()
        log.warning("store unavailable, retrying in %.1fs: %s", pause, problem)
        self._report(problem)

    def _report(self, problem: str | None) -> None:
        if problem == self._problem:
            return
        self._problem = problem
        try:
            write_json_atomic(
                self.info.folder / STATUS_FILE, {"problem": problem, "since": time.time()}
            )
        except OSError as error:
            log.warning("cannot write %s: %s", STATUS_FILE, error)

    def finish_abandoned(self) -> None:
        """After the kernel died and everything journaled is uploaded: end what it left
        running."""
        reason = (
            f"kernel (pid {self.info.kernel_pid}) died before the cell finished; nbtrack "
            "uploaded every point it had journaled"
        )
        for spool in pending_spools(self.info.folder):
            uploader = self._uploader(spool)
            uploader.step()
            if uploader.problem is not None:
                continue  # refused by the store (deleted experiment): kept for `nbtrack sync`
            if not uploader.ended:
                uploader.finish_abandoned(reason)
            uploader.remove()
            self.uploaders.pop(spool, None)

    def drain_all(self, deadline: float | None = None) -> None:
        """Upload until nothing is left (kernel gone), retrying while the store is down."""
        while pending_spools(self.info.folder):
            if self.backoff.ready():
                try:
                    while self._step():
                        pass
                    self.finish_abandoned()
                    self.backoff.succeeded()
                    self._report(None)
                except StoreUnavailable as error:
                    self._unreachable(str(error))
                if all(u.problem is not None for u in self.uploaders.values()) and self.uploaders:
                    return  # only runs the store refused are left: kept for `nbtrack sync`
            if deadline is not None and time.monotonic() > deadline:
                return
            time.sleep(max(_POLL_S, self.backoff.retry_at - time.monotonic()))


def recover_orphans(
    tracking_uri: str | None,
    skip: Path | None = None,
    give_up_after_s: float | None = None,
    root: Path | None = None,
    longest_pause: float | None = None,
) -> list[str]:
    """Replay every orphaned session of this user under ``root`` (default: the spool root),
    of ``tracking_uri`` if given. Returns what was done, a line per session. With
    ``give_up_after_s``, a session whose store stays unreachable that long is kept for a later
    try; ``longest_pause`` bounds the pauses between retries."""
    done: list[str] = []
    for folder in session_folders(root or spool_root()):
        if folder == skip or not is_orphan(folder):
            continue
        info = SessionInfo.load(folder)
        if info is None:
            continue
        if tracking_uri is not None and info.tracking_uri != tracking_uri:
            continue
        lock = SessionLock(folder)
        if not lock.acquire():
            continue
        try:
            uploader = SessionUploader(info, longest_pause=longest_pause)
            spools = pending_spools(folder)
            deadline = None if give_up_after_s is None else time.monotonic() + give_up_after_s
            uploader.drain_all(deadline)
            where = strip_uri_credentials(info.tracking_uri)
            if not pending_spools(folder):
                done.append(f"{folder.name}: {len(spools)} run(s) uploaded to {where}")
                shutil.rmtree(folder, ignore_errors=True)
            else:
                refused = [u.problem for u in uploader.uploaders.values() if u.problem]
                why = refused[0] if refused else "store unreachable"
                done.append(f"{folder.name}: {why}; kept for a later `nbtrack sync`")
        finally:
            lock.release()
    return done


def run_worker(folder: Path) -> int:
    """Main loop of a kernel's sync process."""
    lock = SessionLock(folder)
    if not lock.acquire():
        log.info("another sync process already uploads %s", folder.name)
        return 0
    info = SessionInfo.load(folder)
    if info is None:
        log.error("no readable session.json in %s", folder.name)
        return 1
    # Journals of earlier kernels that died on the same store, picked up off the main loop.
    threading.Thread(
        target=recover_orphans, args=(info.tracking_uri, folder), name="orphans", daemon=True
    ).start()
    pacer = Pacer(settings().sync_cpu_share)
    uploader = SessionUploader(info, pacer, system_interval=settings().system_metrics)
    wake = _Wake()
    idle_polls = 0
    while True:
        alive = wake.kernel_connected and info.kernel_alive()
        uploader.pacer = pacer if alive else None
        progressed = uploader.step()
        if not alive:
            uploader.stop_system_metrics()
            uploader.drain_all()
            if not pending_spools(folder) or all(
                u.problem is not None for u in uploader.uploaders.values()
            ):
                break
            time.sleep(1.0)
            continue
        idle_polls = 0 if progressed else idle_polls + 1
        # Poll fast while data flows (a cell's end may wait on us), slower when idle; the
        # kernel wakes us at once when a run starts or ends.
        wake.wait(_POLL_S if idle_polls < 100 else _IDLE_POLL_S)
    lock.release()
    if not pending_spools(folder):
        shutil.rmtree(folder, ignore_errors=True)
    return 0


class _Wake:
    """The kernel writes a byte to our stdin when there is news; its end of the pipe closes
    when the kernel dies, which we learn at once."""

    def __init__(self) -> None:
        self.kernel_connected = True
        self._fd = sys.stdin.fileno() if sys.stdin is not None else -1

    def wait(self, timeout: float) -> None:
        if self._fd < 0 or not self.kernel_connected:
            time.sleep(timeout)
            return
        if _platform.wait_readable(self._fd, timeout):
            try:
                data = os.read(self._fd, 4096)
            except OSError:
                data = b""
            if not data:
                self.kernel_connected = False


class _RedactingFormatter(logging.Formatter):
    """No log line carries a credential (a store URI with a password, a token in an error)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)

    def excepthook(kind: type[BaseException], error: BaseException, tb: Any) -> None:
        log.critical("sync process crashed", exc_info=(kind, error, tb))

    sys.excepthook = excepthook


def main() -> int:
    folder = Path(sys.argv[1])
    _configure_logging()
    # MLflow's client costs ~110 µs of CPU per point; on a busy machine that CPU should go to
    # the training loop first. The upload catches up when the loop leaves room (or at its end).
    try:
        _platform.lower_priority(settings().sync_nice)
    except OSError as error:
        log.warning("could not lower this process's priority: %s", error)
    return run_worker(folder)


if __name__ == "__main__":
    # The worker does its own retries with backoff; MLflow's internal HTTP retries (up to 7,
    # minutes long) would hide an outage from it and stall every other run behind one request.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    sys.exit(main())
