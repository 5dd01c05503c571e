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

from nbtrack import _platform
from nbtrack._settings import settings
from nbtrack.journal.folders import (
    STORE_URI_VARIABLE,
    SessionInfo,
    SessionLock,
    is_orphan,
    pending_spools,
    session_folders,
    spool_root,
    untrusted,
)
from nbtrack.journal.pacer import Pacer
from nbtrack.journal.store_errors import error_line
from nbtrack.journal.uploader import SessionUploader
from nbtrack.journal.worker_log import configure_logging
from nbtrack.tracking import resolve_uri

__all__ = ["main", "recover_orphans", "run_worker"]

log = logging.getLogger("nbtrack.sync")

_POLL_S = 0.05
_IDLE_POLL_S = 0.25


def recover_orphans(
    tracking_uri: str | None,
    skip: Path | None = None,
    give_up_after_s: float | None = None,
    root: Path | None = None,
    longest_pause: float | None = None,
) -> list[str]:
    """Replay every orphaned session of this user under ``root`` (default: the spool root).
    ``tracking_uri``: the full URI of the one store to replay (a sync process replays its own
    store's, whatever credentials its sessions were journaled with); None: every store, each
    with the credentials this environment has for it (``nbtrack sync``). Returns what was
    done, a line per session, and what was not trusted. With ``give_up_after_s``, a session
    whose store stays unreachable that long is kept for a later try; ``longest_pause`` bounds
    the pauses between retries."""
    root = root or spool_root()
    done = untrusted(root)
    for line in done:
        log.warning("%s", line)
    for folder in session_folders(root):
        if folder == skip or not is_orphan(folder):
            continue
        info = SessionInfo.load(folder)
        # Asked again of the session that would be replayed: a kernel makes its folder first
        # and writes its session.json into it a moment later, so is_orphan may have seen that
        # moment (no session, lock free) and taken a starting kernel's folder for an orphan.
        # The file is written once, so a kernel it names as gone stays gone.
        if info is None or info.kernel_alive():
            continue
        if tracking_uri is not None and not info.is_store(tracking_uri):
            continue
        try:
            # With this environment's credentials for the store, whichever it had when the
            # runs were journaled: a password that was wrong then is fixed by setting the
            # right one. (A malformed MLFLOW_TRACKING_URI raises here.)
            uri = tracking_uri or info.connect_uri(
                [os.environ.get("MLFLOW_TRACKING_URI"), resolve_uri()]
            )
        except Exception as error:  # noqa: BLE001 - one session must not stop the others
            done.append(_kept(folder, error))
            continue
        lock = SessionLock(folder)
        if not lock.acquire():
            continue
        try:
            done.append(_recover(info, uri, give_up_after_s, longest_pause))
        except Exception as error:  # noqa: BLE001 - one session must not stop the others
            done.append(_kept(folder, error))
        finally:
            lock.release()
    return done


def _kept(folder: Path, error: Exception) -> str:
    """Whatever went wrong, the journal stays as it is for a later try; the user gets one
    line, not a traceback."""
    log.warning("replaying %s failed: %s", folder.name, error_line(error))
    return f"{folder.name}: could not be replayed ({error_line(error)}); kept for a later " \
        "`nbtrack sync`"  # fmt: skip


def _recover(
    info: SessionInfo, uri: str, give_up_after_s: float | None, longest_pause: float | None
) -> str:
    """Replay one orphaned session (``uri``: its store's full URI); what happened, in one
    line."""
    folder = info.folder
    uploader = SessionUploader(info, uri, longest_pause=longest_pause)
    spools = pending_spools(folder)
    deadline = None if give_up_after_s is None else time.monotonic() + give_up_after_s
    uploader.drain_all(deadline)
    if not pending_spools(folder):
        shutil.rmtree(folder, ignore_errors=True)
        # (the session keeps the store's URI without its credentials)
        return f"{folder.name}: {len(spools)} run(s) uploaded to {info.tracking_uri}"
    refused = [u.problem for u in uploader.uploaders.values() if u.problem]
    if refused:
        why = refused[0]
    elif uploader.access_refused and uploader.problem:
        why = uploader.problem  # the store answers, and says what to set: not "unreachable"
    elif uploader.local_problem and not uploader.problem:
        why = uploader.local_problem
    else:
        why = f"store unreachable: {uploader.problem or 'no answer'}"
    return f"{folder.name}: {why}; kept for a later `nbtrack sync`"


def run_worker(folder: Path) -> int:
    """Main loop of a kernel's sync process."""
    lock = SessionLock(folder)
    if not lock.acquire():
        log.info("another sync process already uploads %s", folder.name)
        return 0
    info = SessionInfo.load(folder)
    if info is None:
        log.error("no readable session.json in %s, or it is not this user's own", folder.name)
        return 1
    uri = os.environ.pop(STORE_URI_VARIABLE, None) or info.tracking_uri
    if not info.is_store(uri):
        log.error("the kernel did not hand over the full URI of %s", info.tracking_uri)
        return 1
    # Journals of earlier kernels that died on the same store, picked up off the main loop.
    threading.Thread(
        target=recover_orphans, args=(uri, folder), name="orphans", daemon=True
    ).start()
    pacer = Pacer(settings().sync_cpu_share)
    uploader = SessionUploader(info, uri, pacer, system_interval=settings().system_metrics)
    wake = _Wake()
    idle_polls = 0
    while True:
        alive = wake.kernel_connected and info.kernel_alive()
        uploader.pacer = pacer if alive else None
        progressed = uploader.step()
        if not alive:
            uploader.stop_system_metrics()
            uploader.drain_all()
            if (
                not pending_spools(folder)
                or uploader.access_refused
                or all(u.problem is not None for u in uploader.uploaders.values())
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


def main() -> int:
    folder = Path(sys.argv[1])
    configure_logging()
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
    # Nobody reads MLflow's "View run at <url>" here; the log is no place for store addresses.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    sys.exit(main())
