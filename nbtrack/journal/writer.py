"""The kernel's side of the journal: write a run's journal, start the sync process, wait for it.

``Journal`` is one run's write-ahead file. The sender thread appends each batch to it (under the
run's drain lock, so there is one writer) before anything else sees the batch; a line is in the
operating system before the call returns, so a kernel killed right after loses nothing written.
``SyncSession`` is this kernel's session folder for one tracking store and the sync process
(``nbtrack.journal.worker``) that uploads it. ``wait_all`` is ``nbtrack.wait()``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbtrack import _platform
from nbtrack._files import make_private_dir, open_private, read_json
from nbtrack._model import Batch, Run
from nbtrack._settings import settings
from nbtrack.journal.folders import (
    FILES_SUFFIX,
    HURRY_FILE,
    STATE_SUFFIX,
    STATUS_FILE,
    SessionInfo,
    is_orphan,
    pending_spools,
    session_folders,
    spool_root,
)
from nbtrack.journal.format import encode, metrics_line

__all__ = ["Journal", "JournalError", "Progress", "SyncSession", "session_for", "wait_all"]

_POLL_S = 0.02
# A sync process that dies sooner than this after its start is restarted after a growing pause
# (up to _RESTART_MAX_S), not at once: a broken environment must not become a crash loop.
_QUICK_DEATH_S = 5.0
_RESTART_MAX_S = 30.0


class JournalError(OSError):
    """The journal could not be created: nothing can be tracked durably until this is fixed."""


@dataclass(frozen=True)
class Progress:
    """How far the sync process got with one run."""

    synced: bool  # everything is in the store and the run is ended there
    run_id: str | None
    experiment_id: str | None
    acknowledged: int  # bytes of the journal the store has
    size: int  # bytes of the journal written so far
    problem: str | None  # why the store refused the run for good, if it did


class Journal:
    """One run's journal. Written by one thread at a time (the run's drain lock, or the main
    thread at cell start and end, when the sender does not touch the run)."""

    def __init__(self, session: SyncSession, run: Run) -> None:
        self.session = session
        self.path = session.new_spool()
        self.files = self.path.with_suffix(FILES_SUFFIX)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)
        except OSError as error:
            msg = (
                f"nbtrack cannot write its journal in {self.path.parent} ({error.strerror}); "
                "set NBTRACK_SPOOL_DIR to a writable folder with free space"
            )
            raise JournalError(msg) from error
        self._size = 0
        self._staged = 0
        self._ended = False
        self._end_line: dict[str, Any] | None = None
        # Points and other lines that could not be made durable (a full or read-only disk).
        self.lost_points = 0
        self.lost_items = 0
        self.write_problem: str | None = None
        self._write(
            {
                "t": "start",
                "experiment_name": run.experiment_name,
                "run_name": run.run_name,
                "start_time": run.start_time_ms,
                "tags": run.tags,
            }
        )
        self._run_id: str | None = None
        self._experiment_id: str | None = None
        session.wake()

    # ------------------------------------------------------------------ written by the kernel

    def update(self, run: Run, batch: Batch) -> None:  # noqa: ARG002 - the Output protocol
        if batch.metrics and not self._write(metrics_line(batch.metrics)):
            self.lost_points += batch.point_count
        if batch.params and not self._write({"t": "p", "p": batch.params}):
            self.lost_items += len(batch.params)
        if batch.tags and not self._write({"t": "g", "g": batch.tags}):
            self.lost_items += len(batch.tags)
        for path, destination in batch.artifacts:
            if not self._write({"t": "a", "path": path, "dest": destination}):
                self.lost_items += 1
        for artifact in batch.deletions:
            if not self._write({"t": "x", "path": artifact}):
                self.lost_items += 1

    def stage(self, source: Path) -> str:
        """Copy a file or folder into the run's staging folder now (later changes to it are not
        uploaded); return its path there, for an ``a`` line."""
        self._staged += 1
        relative = f"artifact-{self._staged}/{source.name}"
        target = make_private_dir(self.files / f"artifact-{self._staged}") / source.name
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True)
        else:
            shutil.copy2(source, target)
        return relative

    def stage_text(self, relative: str, text: str) -> None:
        """Write a text file (code, environment) into the run's staging folder."""
        target = self.files / relative
        make_private_dir(target.parent)
        with open_private(target, "w") as out:
            out.write(text)

    def end(self, run: Run) -> bool:
        """Write the end line (status, end time, what was lost). False if it could not be
        written yet: ``retry_end`` tries again (the sender does, while the kernel lives)."""
        self._end_line = {
            "t": "end",
            "status": run.status.value,
            "end_time": run.end_time_ms,
            "lost_points": self.lost_points,
            "lost_items": self.lost_items,
            "problem": self.write_problem,
        }
        return self.retry_end()

    def retry_end(self) -> bool:
        if self._ended:
            return True
        if self._end_line is None or not self._write(self._end_line):
            return False
        self._ended = True
        os.close(self._fd)
        self.session.wake()
        return True

    @property
    def ended(self) -> bool:
        return self._ended

    def _write(self, record: dict[str, Any]) -> bool:
        """Append one line; on failure take back whatever part of it reached the file, so the
        journal never holds a torn line, and remember why."""
        if self._ended:
            return False
        line = encode(record)
        data = memoryview(line)
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except OSError as error:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            self.write_problem = f"{error.strerror or error} ({self.path.parent})"
            return False
        self._size += len(line)
        return True

    # ------------------------------------------------------------------ read from the sync side

    def progress(self) -> Progress:
        state = read_json(self.path.with_suffix(STATE_SUFFIX))
        done = state is None and read_json(self.path.with_suffix(".done"))
        if done:
            state = done
        state = state or {}
        self._run_id = state.get("run_id") or self._run_id
        self._experiment_id = state.get("experiment_id") or self._experiment_id
        synced = bool(done) or (self._ended and not self.path.exists())
        return Progress(
            synced=synced,
            run_id=self._run_id,
            experiment_id=self._experiment_id,
            acknowledged=int(state.get("offset", 0)),
            size=self._size,
            problem=state.get("problem"),
        )

    def pending_points(self, total: int) -> int:
        """About how many of the run's ``total`` points the store does not have yet."""
        progress = self.progress()
        if progress.synced or not progress.size:
            return 0
        left = max(0, progress.size - progress.acknowledged)
        return round(total * left / progress.size)


class SyncSession:
    """This kernel's session folder for one tracking store, and its sync process."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        root = make_private_dir(spool_root())
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        self.folder = make_private_dir(root / name)
        SessionInfo(
            folder=self.folder,
            kernel_pid=os.getpid(),
            kernel_start_ticks=_platform.process_start_ticks(os.getpid()),
            tracking_uri=tracking_uri,
        ).save()
        self._worker: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._restart_at = 0.0
        self._restart_pause = 0.0
        self._lock = threading.Lock()
        self._counter = 0
        self.ensure_worker()

    def ensure_worker(self) -> None:
        """Start the sync process, or start it again if it died."""
        with self._lock:
            if self._worker is not None and self._worker.poll() is None:
                return
            now = time.monotonic()
            if self._worker is not None:
                if now < self._restart_at:
                    return
                quick = now - self._started_at < _QUICK_DEATH_S
                self._restart_pause = (
                    min(_RESTART_MAX_S, max(0.5, 2 * self._restart_pause)) if quick else 0.0
                )
                self._restart_at = now + self._restart_pause
            self._started_at = now
            self._worker = _start_worker(self.folder)

    def wake(self) -> None:
        """Tell the sync process there is news (a new run, an ended one): it looks at once
        instead of at its next poll."""
        worker = self._worker
        if worker is not None and worker.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                worker.stdin.write(b"\n")
                worker.stdin.flush()

    @property
    def worker_pid(self) -> int | None:
        return None if self._worker is None else self._worker.pid

    def new_spool(self) -> Path:
        with self._lock:
            self._counter += 1
            counter = self._counter
        return self.folder / f"run{counter:04d}-{uuid.uuid4().hex[:6]}.spool"

    def store_problem(self) -> str | None:
        """Why the sync process cannot reach the store right now, or None if it can."""
        status = read_json(self.folder / STATUS_FILE) or {}
        problem = status.get("problem")
        return None if problem is None else str(problem)

    def wait(
        self,
        timeout: float | None,
        upto: dict[Path, int] | None = None,
        until: Callable[[], bool] | None = None,
    ) -> bool:
        """Block until every run of the session is stored (or ``until()`` is true); False on
        timeout. ``upto`` maps the journal of a run still being logged to the size that is
        enough. Interruptible: a KeyboardInterrupt stops the waiting, not the upload.
        """
        upto = upto or {}
        deadline = None if timeout is None else time.monotonic() + timeout
        hurry = self.folder / HURRY_FILE
        # Someone waits: the sync process stops pacing the upload of runs still being logged.
        with contextlib.suppress(OSError):
            hurry.touch()
        self.wake()
        try:
            while True:
                if until is not None:
                    if until():
                        return True
                elif all(
                    _acknowledged(path, upto.get(path)) for path in pending_spools(self.folder)
                ):
                    return True
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                self.ensure_worker()
                time.sleep(_POLL_S)
        finally:
            hurry.unlink(missing_ok=True)


def _start_worker(folder: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    # The sync process must import this very nbtrack, also from a source checkout.
    package_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    with open_private(folder / "worker.log") as log:
        return subprocess.Popen(  # noqa: S603 - our own module, no shell
            [sys.executable, "-m", "nbtrack.journal.worker", str(folder)],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=log,
            env=env,
            # Its own session: a kernel interrupt (SIGINT to the group) or restart must not
            # take the upload down with it.
            start_new_session=True,
            close_fds=True,
        )


def _acknowledged(spool: Path, size: int | None) -> bool:
    """Whether the sync process confirmed the first ``size`` bytes of ``spool`` as stored."""
    if size is None:
        return False
    state = read_json(spool.with_suffix(STATE_SUFFIX)) or {}
    return int(state.get("offset", 0)) >= size


_sessions: dict[str, SyncSession] = {}
_sessions_lock = threading.Lock()


def session_for(tracking_uri: str) -> SyncSession:
    """This kernel's session for ``tracking_uri``, created (with its sync process) on first use."""
    with _sessions_lock:
        session = _sessions.get(tracking_uri)
        if session is None:
            session = _sessions[tracking_uri] = SyncSession(tracking_uri)
        return session


def adopt_orphans(tracking_uri: str) -> bool:
    """If dead kernels left journals for this store, start this kernel's sync process now: it
    replays them (ending those runs FAILED) before this kernel tracks anything. True if any."""
    for folder in session_folders(spool_root()):
        info = SessionInfo.load(folder)
        if info is not None and info.tracking_uri == tracking_uri and is_orphan(folder):
            session_for(tracking_uri)
            return True
    return False


def wait_all(timeout: float | None = None, upto: dict[Path, int] | None = None) -> bool:
    """Wait until every run of this kernel is stored; False if ``timeout`` ran out first.
    ``upto``: journals of runs still being logged, and how much of each is enough."""
    deadline = None if timeout is None else time.monotonic() + timeout
    for session in list(_sessions.values()):
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not session.wait(left, upto=upto):
            return False
    return True


@atexit.register
def _wait_at_exit() -> None:
    # The sync process would finish on its own, but waiting here means a clean shutdown ends
    # with everything stored and the session folder gone.
    if _sessions:
        with contextlib.suppress(KeyboardInterrupt):
            wait_all(settings().exit_wait)
