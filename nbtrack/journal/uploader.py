"""The sync process's work on one session folder: every journal in it, in order, paced while
its cell runs, retried with growing pauses while the store is unreachable, and the store's
state told to the kernel (``status.json``). ``worker`` runs it in a loop for a live kernel;
``worker.recover_orphans`` (``nbtrack sync``) for the sessions of dead ones.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from nbtrack._files import write_json_atomic
from nbtrack._settings import settings
from nbtrack.journal.folders import HURRY_FILE, STATUS_FILE, SessionInfo, pending_spools
from nbtrack.journal.format import run_ended
from nbtrack.journal.inflight import InFlight
from nbtrack.journal.pacer import PIECE_POINTS, Pacer
from nbtrack.journal.parents import ParentNotReady, parent_run_id
from nbtrack.journal.store_errors import StoreUnavailable, error_line
from nbtrack.journal.system import SystemSampling
from nbtrack.journal.upload import RunUploader
from nbtrack.tracking import is_local, make_client

__all__ = ["Backoff", "SessionUploader"]

log = logging.getLogger("nbtrack.sync")

_POLL_S = 0.05
# A SQLite file locked by other writers (MLflow waits 20 s per statement already) is told to the
# user only if it stays locked this long.
_LOCKED_QUIETLY_S = 120.0


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
        uri: str,
        pacer: Pacer | None = None,
        longest_pause: float | None = None,
        system_interval: float = 0.0,
    ) -> None:
        self.info = info
        self.uri = uri  # the store's full URI, credentials included: never logged or written
        # System metrics of the runs a live kernel is executing, every system_interval seconds
        # (0: none, as for the journals of dead kernels).
        self.system = SystemSampling(uri, system_interval)
        self.pacer = pacer
        self.client: Any = None
        self.uploaders: dict[Path, RunUploader] = {}
        self.experiments: dict[str, str] = {}
        # How many log_batch requests to keep in flight, learnt for this store by its runs.
        self.inflight = InFlight(single=is_local(info.tracking_uri))
        self.backoff = Backoff(longest_pause)
        self._problem: str | None = None
        self.local_problem: str | None = None
        # The server refused our credentials (401): retried rarely, and given up once the
        # kernel is gone (the journal waits for `nbtrack sync` with credentials that work).
        self.access_refused = False
        # Since when a SQLite store has been locked by another process (0: it is not).
        self._locked_since = 0.0

    def step(self) -> bool:
        """One pass over the session's journals; True if anything was uploaded."""
        if not self.backoff.ready():
            return False
        try:
            progressed = self._step()
        except StoreUnavailable as error:
            self._unreachable(error)
            return False
        except Exception as error:  # noqa: BLE001 - logged with its traceback by _failed
            # Anything else (a full disk under the journals, a bug): the process lives on and
            # tries again after a pause, rather than dying and being restarted in a loop.
            self._failed(error)
            return False
        self._reachable()
        return progressed

    def _step(self) -> bool:
        if self.client is None:
            self.client = self._connect()
        progressed = False
        spools = pending_spools(self.info.folder)
        for spool in spools:  # runs first: a person may be waiting for a new run's link
            uploader = self._uploader(spool)
            self.system.follow(spool, uploader.run_id, self.client)
            if self._problem is not None:  # the store is back: this run waited for it
                uploader.mark_created_late()
            progressed |= not uploader.created and uploader.create()
        for spool in spools:
            uploader = self._uploader(spool)
            if not uploader.created:
                continue
            self.system.follow(spool, uploader.run_id, self.client)
            pacer = self._pacer_for(spool)
            if pacer is not None:
                if uploader.preview.due():  # the newest points ahead of the paced rest
                    uploader.send_preview()
                if not pacer.ready():
                    continue
                cpu = time.process_time()  # the requests in flight run in threads of their own
                progressed |= uploader.step(max_points=PIECE_POINTS)
                pacer.spent(time.process_time() - cpu)
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
            return make_client(self.uri)
        except Exception as error:
            raise StoreUnavailable(f"opening the store: {error_line(error)}") from error

    def _uploader(self, spool: Path) -> RunUploader:
        uploader = self.uploaders.get(spool)
        if uploader is None:
            uploader = self.uploaders[spool] = RunUploader(
                spool, self.client, self.experiments, self.inflight
            )
            uploader.parents = self._parent_run_id
            if self.pacer is not None and not run_ended(spool):
                self.pacer.hold()
        return uploader

    def _parent_run_id(self, key: str) -> str | None:
        """A sweep trial's parent (nbtrack.journal.parents), created first if need be."""
        try:
            return parent_run_id(self.info.folder, key, self._uploader)
        except ParentNotReady as error:
            raise StoreUnavailable(str(error)) from error

    def _pacer_for(self, spool: Path) -> Pacer | None:
        """The pacer, if this journal's run is still being logged by a live kernel nobody
        waits for; None means full speed."""
        pacer = self.pacer
        # The share comes last: reading it measures the machine, which is only worth doing
        # (and only right to do) while a cell runs.
        if (
            pacer is None
            or (self.info.folder / HURRY_FILE).exists()
            or run_ended(spool)
            or pacer.share >= 1
        ):
            return None
        return pacer

    def _unreachable(self, error: StoreUnavailable) -> None:
        now = time.monotonic()
        if "database is locked" in str(error):
            # Another kernel's sync process is writing the same SQLite file: wait our turn,
            # quietly, unless the lock is held for so long that something is wrong.
            self._locked_since = self._locked_since or now
            if now - self._locked_since < _LOCKED_QUIETLY_S:
                self.backoff.retry_at = now + _POLL_S * 5
                log.info("store busy (locked by another process), retrying: %s", error)
                return
        for spool in pending_spools(self.info.folder):
            self._uploader(spool).mark_created_late()
        self.access_refused = error.access
        pause = self.backoff.failed()
        if error.access:
            # Wrong credentials do not fix themselves; hammering a server with them can lock
            # the account. The kernel restarts us when its credentials change.
            pause = self.backoff.pause = self.backoff.longest or settings().retry_max_s
            self.backoff.retry_at = now + pause
        log.warning("store unavailable, retrying in %.1fs: %s", pause, error)
        self._report(str(error))

    def _reachable(self) -> None:
        self.access_refused = False
        self._locked_since = 0.0
        self.backoff.succeeded()
        self._report(None)
        self.local_problem = None

    def _failed(self, error: Exception) -> None:
        """A failure on this side (a full disk under the journals, a bug): logged with its
        traceback, retried after a growing pause. The store is not blamed for it."""
        pause = self.backoff.failed()
        log.exception("sync step failed, retrying in %.1fs", pause)
        self.local_problem = f"nbtrack's sync process: {error_line(error)}"

    @property
    def problem(self) -> str | None:
        """Why the store could not be reached at the last try, or None if it could."""
        return self._problem

    def _report(self, problem: str | None) -> None:
        if problem == self._problem:
            return
        self._problem = problem
        try:
            # With our pid: the kernel counts a refusal of credentials only from the process
            # it started with its current ones (journal.session.credentials_refused).
            write_json_atomic(
                self.info.folder / STATUS_FILE,
                {"problem": problem, "since": time.time(), "pid": os.getpid()},
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
            if not uploader.ended and not uploader.finish_abandoned(reason):
                continue  # its start line is unreadable: kept
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
                    self._reachable()
                except StoreUnavailable as error:
                    self._unreachable(error)
                except Exception as error:  # noqa: BLE001 - as in step(): logged, retried
                    self._failed(error)
                if all(u.problem is not None for u in self.uploaders.values()) and self.uploaders:
                    return  # only runs the store refused are left: kept for `nbtrack sync`
                if self.access_refused:
                    return  # kept for `nbtrack sync` with credentials that work
            if deadline is not None and time.monotonic() > deadline:
                return
            time.sleep(max(_POLL_S, self.backoff.retry_at - time.monotonic()))
