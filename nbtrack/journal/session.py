"""This kernel's session folder for one tracking store, the sync process that uploads it, and
waiting for it.

``SyncSession`` is this kernel's session folder for one tracking store and the sync process
(``nbtrack.journal.worker``) that uploads the journals in it (``nbtrack.journal.writer``);
``session_for`` finds or starts it, ``adopt_orphans`` starts it early when dead kernels left
journals, and ``wait_all`` is ``nbtrack.wait()``. A session is the store's, whatever the
credentials (``folders.store_of``): when the kernel's change (``check_credentials``, called by
the sender thread about once a second), its sync process is started again with the new ones.
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
from collections.abc import Callable
from pathlib import Path

from nbtrack import _platform
from nbtrack._files import (
    PrivateFolderError,
    make_private_dir,
    open_private,
    private_folder,
    read_json,
    touch_private,
)
from nbtrack._settings import settings
from nbtrack.journal.access import ACCESS_REFUSED, fingerprint
from nbtrack.journal.folders import (
    HURRY_FILE,
    STATUS_FILE,
    STORE_URI_VARIABLE,
    JournalError,
    SessionInfo,
    acknowledged,
    is_orphan,
    pending_spools,
    refused,
    session_folders,
    spool_root,
    store_of,
)
from nbtrack.tracking import is_local, resolve_uri

__all__ = ["SyncSession", "adopt_orphans", "session_for", "wait_all"]

_POLL_S = 0.02
# A sync process that dies sooner than this after its start is restarted after a growing pause
# (up to _RESTART_MAX_S), not at once: a broken environment must not become a crash loop.
_QUICK_DEATH_S = 5.0
_RESTART_MAX_S = 30.0
# How often the sender thread looks whether the kernel's credentials changed: a few
# environment reads and a hash, off the training loop.
_CREDENTIALS_CHECK_S = 1.0


class SyncSession:
    """This kernel's session folder for one tracking store, and its sync process."""

    def __init__(self, tracking_uri: str) -> None:
        # The store's full URI as last given (credentials included): what the sync process
        # connects with. Never written to a file.
        self.tracking_uri = tracking_uri
        root = _spool_folder()
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        self.folder = make_private_dir(root / name)
        SessionInfo.create(
            self.folder, os.getpid(), _platform.process_start_ticks(os.getpid()), tracking_uri
        ).save()
        self._worker: subprocess.Popen[bytes] | None = None
        self._credentials = ""
        self._started_at = 0.0
        self._restart_at = 0.0
        self._restart_pause = 0.0
        self._credentials_checked_at = 0.0
        self._lock = threading.Lock()
        self._counter = 0
        # How many sync processes this session started: one, unless they died (a crash loop
        # shows here, and in worker.log).
        self.worker_starts = 0
        self.ensure_worker()

    def use_uri(self, tracking_uri: str) -> None:
        """A tracked cell names the store with ``tracking_uri``: its credentials are the ones
        to use from now on (``ensure_worker`` restarts the sync process if they changed)."""
        with self._lock:
            self.tracking_uri = tracking_uri

    def check_credentials(self) -> None:
        """``ensure_worker``, at most about once a second. The sender thread calls it at each
        wake while runs wait, so that credentials fixed in any cell, or a token rotated while a
        cell runs, reach the sync process without a new tracked cell."""
        now = time.monotonic()
        if now - self._credentials_checked_at < _CREDENTIALS_CHECK_S:
            return
        self._credentials_checked_at = now
        self.ensure_worker()

    def ensure_worker(self) -> None:
        """Start the sync process, or start it again if it died or if this kernel's
        credentials for the store changed (the old process may be stuck on refused ones)."""
        with self._lock:
            running = self._worker is not None and self._worker.poll() is None
            self.tracking_uri = self._uri_now()
            credentials = fingerprint(self.tracking_uri)
            if running and credentials != self._credentials and self._worker is not None:
                self._worker.terminate()  # acknowledged work is kept; the rest is redone
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._worker.wait(timeout=10)
                self._worker = None
                running = False
            if running:
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
            self._credentials = credentials
            self._worker = _start_worker(self.folder, self.tracking_uri)
            self.worker_starts += 1

    def _uri_now(self) -> str:
        """The store's URI as the kernel gives it now: MLflow's tracking URI of the moment when
        it names this store (its password may have been fixed since), else the last one."""
        if is_local(self.tracking_uri):
            return self.tracking_uri  # a file: no credentials in it to change
        try:
            uri = resolve_uri()
        except OSError:  # the working folder is gone: nothing new to learn
            return self.tracking_uri
        return uri if store_of(uri) == store_of(self.tracking_uri) else self.tracking_uri

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
        # The key the run carries in the store, where the sync process finds it again after a
        # crash: a whole uuid4, since every kernel's first run is run0001 (24 random bits
        # made two kernels' runs merge).
        return self.folder / f"run{counter:04d}-{uuid.uuid4().hex}.spool"

    def store_problem(self) -> str | None:
        """Why the sync process cannot reach the store right now, or None if it can."""
        status = read_json(self.folder / STATUS_FILE) or {}
        problem = status.get("problem")
        return None if problem is None else str(problem)

    def credentials_refused(self) -> bool:
        """Whether the running sync process was refused the credentials it has (401): every
        run then waits for new ones, not for time. A refusal reported by an earlier process
        (before the credentials changed) does not count."""
        status = read_json(self.folder / STATUS_FILE) or {}
        return (
            str(status.get("problem") or "").startswith(ACCESS_REFUSED)
            and status.get("pid") is not None
            and status.get("pid") == self.worker_pid
        )

    def wait(
        self,
        timeout: float | None,
        upto: dict[Path, int] | None = None,
        until: Callable[[], bool] | None = None,
    ) -> bool:
        """Block until every run of the session is stored (or ``until()`` is true); False on
        timeout, or as soon as the only runs left are ones the store refused, or the store
        refused the credentials (they wait for the user, not for time). ``upto`` maps the
        journal of a run still being logged to the size that is enough. Interruptible: a
        KeyboardInterrupt stops the waiting, not the upload.
        """
        upto = upto or {}
        deadline = None if timeout is None else time.monotonic() + timeout
        hurry = self.folder / HURRY_FILE
        # Someone waits: the sync process stops pacing the upload of runs still being logged.
        with contextlib.suppress(OSError):
            touch_private(hurry)
        self.wake()
        try:
            while True:
                # First: credentials fixed just before this wait restart the sync process, so
                # that the old one's refusal of them no longer counts.
                self.ensure_worker()
                if until is not None:
                    if until():
                        return True
                else:
                    left = [
                        path
                        for path in pending_spools(self.folder)
                        if not acknowledged(path, upto.get(path))
                    ]
                    if not left:
                        return True
                    if all(refused(path) for path in left) or self.credentials_refused():
                        return False
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                time.sleep(_POLL_S)
        finally:
            hurry.unlink(missing_ok=True)


def _spool_folder() -> Path:
    """The spool root, private. One that another user owns, can write to or can replace (they
    could read, swap or plant journals there), or none at all (no home folder), is a
    ``JournalError`` saying why and what to set: a tracked cell's ``UsageError``."""
    try:
        return private_folder(spool_root(), "its journals", "NBTRACK_SPOOL_DIR")
    except PrivateFolderError as error:
        raise JournalError(str(error)) from error


def _start_worker(folder: Path, tracking_uri: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    # The store's URI may hold a password: it reaches the sync process in its environment
    # (readable by this user only), never in a file or on its command line.
    env[STORE_URI_VARIABLE] = tracking_uri
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


# This kernel's sessions, by store (``store_of``: the URI without credentials).
_sessions: dict[str, SyncSession] = {}
_sessions_lock = threading.Lock()


def session_for(tracking_uri: str) -> SyncSession:
    """This kernel's session for the store at ``tracking_uri``, created (with its sync process)
    on first use; its credentials are ``tracking_uri``'s and the environment's from now on."""
    with _sessions_lock:
        key = store_of(tracking_uri)
        session = _sessions.get(key)
        if session is None:
            session = _sessions[key] = SyncSession(tracking_uri)
        else:
            session.use_uri(tracking_uri)
            session.ensure_worker()  # restarted if it died, or if the credentials changed
        return session


def adopt_orphans(tracking_uri: str) -> bool:
    """If dead kernels left journals for this store, start this kernel's sync process now: it
    replays them (ending those runs FAILED) before this kernel tracks anything. True if any."""
    for folder in session_folders(spool_root()):
        info = SessionInfo.load(folder)
        if info is not None and info.is_store(tracking_uri) and is_orphan(folder):
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


def _after_fork_in_child() -> None:
    # A forked child has no sessions of its own: its parent's sync processes and journals are
    # the parent's, and the child must not wait for them (or start one) when it exits.
    global _sessions_lock  # noqa: PLW0603
    _sessions.clear()
    _sessions_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _wait_at_exit() -> None:
    # The sync process would finish on its own, but waiting here means a clean shutdown ends
    # with everything stored and the session folder gone.
    if _sessions:
        with contextlib.suppress(KeyboardInterrupt):
            wait_all(settings().exit_wait)
