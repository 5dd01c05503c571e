"""Where journals live on disk, and the files around them.

The spool root holds one *session* folder per kernel and tracking store::

    <spool root>/                  0700
      <session>/                   0700, one kernel and one store
        session.json               kernel pid (+ start time), tracking URI without its credentials
                                   (nothing derived from them), format version
        worker.lock                flock-ed by the sync process uploading this session
        worker.log                 the sync process's own log (no credentials in it)
        status.json                the sync process's view of the store: reachable or not, why
        hurry                      exists while the kernel waits for the upload: no pacing then
        reserve                    disk space set aside, given back to end a run on a full disk
        <run>.spool                the run's journal, appended by the kernel (format.py)
        <run>.state                the sync process's progress: offset read, run id, lines skipped
        <run>.files/               copies of the run's artifacts, staged by the kernel
        <run>.system               system metrics samples the sync process took for the run,
                                   for the kernel's live view and record (journal/system.py)
        <run>.rejected             what the store refused for good, kept with the reason
        <run>.<n>.child            the journal of another process of the run's cell (a worker,
                                   a torch.distributed rank: ``child.py``), and its ``.state``

Everything here is created private to its owner whatever the umask (``nbtrack._files``):
params, tags and code are in these files. A folder that another user owns, or could write to,
is never read back. No file holds a credential, nor a hash of one: the sync process is handed
the store's full URI in its environment, and a later ``nbtrack sync`` connects with the
credentials of its own environment (``SessionInfo.connect_uri``). A session is the store's, not
the credentials': a URI whose password was wrong, then fixed, names the same session.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from nbtrack import _platform
from nbtrack._files import is_private, open_private, read_json, why_not_private, write_json_atomic
from nbtrack._redact import strip_uri_credentials
from nbtrack._settings import cache_dir, settings
from nbtrack.journal.format import FORMAT_VERSION

__all__ = [
    "CHILD_SUFFIX",
    "FILES_SUFFIX",
    "HURRY_FILE",
    "RESERVE_FILE",
    "SPOOL_SUFFIX",
    "STATE_SUFFIX",
    "STATUS_FILE",
    "STORE_URI_VARIABLE",
    "JournalError",
    "SessionInfo",
    "SessionLock",
    "acknowledged",
    "child_journals",
    "is_orphan",
    "keep_reserve",
    "pending_spools",
    "refused",
    "release_reserve",
    "session_folders",
    "spool_root",
    "staged_artifact",
    "staged_file",
    "store_of",
    "untrusted",
]

log = logging.getLogger("nbtrack.sync")

SPOOL_SUFFIX = ".spool"
STATE_SUFFIX = ".state"
FILES_SUFFIX = ".files"
CHILD_SUFFIX = ".child"
HURRY_FILE = "hurry"
RESERVE_FILE = "reserve"
# Room kept free for ending runs on a full disk: an end line and a few small state files of
# the sync process, with a filesystem's block size to spare.
_RESERVE_BYTES = 64 * 1024
STATUS_FILE = "status.json"
# How a kernel hands its store's full URI to its sync process (never written to a file).
STORE_URI_VARIABLE = "NBTRACK_SYNC_STORE_URI"


class JournalError(OSError):
    """A journal, or the folder it goes in, could not be made: nothing can be tracked durably
    until this is fixed (the message says how)."""


def spool_root() -> Path:
    """``$NBTRACK_SPOOL_DIR``, else ``~/.cache/nbtrack/spool``."""
    return settings().spool_dir or cache_dir() / "spool"


def store_of(uri: str) -> str:
    """The store ``uri`` names, whatever credentials it carries: the URI without them. Sessions
    are found by it, so that fixing a wrong password inside the URI (or signing in with other
    credentials) keeps the runs waiting in the journal the same store's, and nothing kept on
    disk is derived from a credential (an unsalted hash of a URI with a password in it would
    let anyone who reads it try passwords offline)."""
    return strip_uri_credentials(uri)


@dataclass
class SessionInfo:
    """Who owns a session folder: the kernel's pid (and start time) and its store, named by
    its URI without credentials."""

    folder: Path
    kernel_pid: int
    kernel_start_ticks: int | None
    tracking_uri: str  # without credentials (store_of): for people to read, and to find it

    @classmethod
    def create(
        cls, folder: Path, kernel_pid: int, kernel_start_ticks: int | None, uri: str
    ) -> SessionInfo:
        return cls(folder, kernel_pid, kernel_start_ticks, store_of(uri))

    @classmethod
    def load(cls, folder: Path) -> SessionInfo | None:
        """The folder's session, or None if it is not one this nbtrack can trust and read."""
        if not is_private(folder):
            return None
        content = read_json(folder / "session.json")
        if content is None or content.get("format") != FORMAT_VERSION:
            return None
        try:
            return cls(
                folder=folder,
                kernel_pid=int(content["kernel_pid"]),
                kernel_start_ticks=content.get("kernel_start_ticks"),
                # Sessions written by older versions may hold the full URI: its credentials
                # are dropped here (and a "store_key" hash of it is ignored).
                tracking_uri=store_of(str(content["tracking_uri"])),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def save(self) -> None:
        write_json_atomic(
            self.folder / "session.json",
            {
                "format": FORMAT_VERSION,
                "kernel_pid": self.kernel_pid,
                "kernel_start_ticks": self.kernel_start_ticks,
                "tracking_uri": self.tracking_uri,
            },
        )

    def is_store(self, uri: str) -> bool:
        """Whether ``uri``, with whatever credentials, names this session's store."""
        return store_of(uri) == self.tracking_uri

    def connect_uri(self, candidates: Iterable[str | None]) -> str:
        """The URI to upload this session with: the first of ``candidates`` (URIs from this
        environment) that names its store, with the credentials it carries; else the store's
        URI as kept, which signs in with MLflow's variables of this environment
        (``MLFLOW_TRACKING_USERNAME``/``PASSWORD``, ``MLFLOW_TRACKING_TOKEN``), if any. A store
        that refuses them says so (``access``), and the journal waits."""
        for uri in candidates:
            if uri and self.is_store(uri):
                return uri
        return self.tracking_uri

    def kernel_alive(self) -> bool:
        return _platform.process_alive(self.kernel_pid, self.kernel_start_ticks)


class SessionLock:
    """The exclusive lock a sync process holds on the session it uploads."""

    def __init__(self, folder: Path) -> None:
        self._path = folder / "worker.lock"
        self._handle: IO[Any] | None = None

    def acquire(self) -> bool:
        try:
            handle = open_private(self._path)
        except OSError:
            return False
        if not _platform.try_lock(handle):
            handle.close()
            return False
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            _platform.unlock(self._handle)
            self._handle.close()
            self._handle = None


def is_orphan(folder: Path) -> bool:
    """A session whose kernel is gone and that no sync process is uploading."""
    info = SessionInfo.load(folder)
    if info is not None and info.kernel_alive():
        return False
    lock = SessionLock(folder)
    if not lock.acquire():
        return False
    lock.release()
    return True


def pending_spools(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"*{SPOOL_SUFFIX}"))


def child_journals(spool: Path) -> list[Path]:
    """The journals the other processes of ``spool``'s run wrote (``child.py``), in order."""
    return sorted(
        spool.parent.glob(f"{spool.stem}.*{CHILD_SUFFIX}"),
        key=lambda path: int(path.suffixes[-2][1:]) if path.suffixes[-2][1:].isdigit() else 0,
    )


def refused(spool: Path) -> bool:
    """Whether the store refused ``spool``'s run for good (the sync process says why)."""
    return bool((read_json(spool.with_suffix(STATE_SUFFIX)) or {}).get("problem"))


def acknowledged(spool: Path, size: int | None) -> bool:
    """Whether the sync process confirmed the first ``size`` bytes of ``spool`` as stored."""
    if size is None:
        return False
    state = read_json(spool.with_suffix(STATE_SUFFIX)) or {}
    return int(state.get("offset", 0)) >= size


def session_folders(root: Path) -> Iterator[Path]:
    """Session folders under ``root`` that this user may trust (see ``is_private``)."""
    if not is_private(root):
        return
    with contextlib.suppress(OSError):
        for folder in sorted(root.iterdir()):
            if folder.is_dir() and is_private(folder):
                yield folder


def untrusted(root: Path) -> list[str]:
    """What under ``root`` will not be replayed because another user could have put it there:
    a line each, saying why (empty if everything there is this user's own)."""
    if not root.exists():
        return []
    why = why_not_private(root)
    if why is not None:
        return [f"nothing in {root} is replayed: {why} (make it yours and `chmod 700` it)"]
    lines = []
    with contextlib.suppress(OSError):
        for entry in sorted(root.iterdir()):
            why = why_not_private(entry)
            if why is not None and (entry.is_dir() or entry.is_symlink()):
                lines.append(f"{entry.name}: not replayed: {why}")
    return lines


def keep_reserve(folder: Path) -> None:
    """Set some disk space aside in a session folder (a file of zeros), for ending runs on a
    full disk; nothing if there is no room even for that."""
    reserve = folder / RESERVE_FILE
    if reserve.exists():
        return
    try:
        with open_private(reserve, "wb") as out:
            out.write(bytes(_RESERVE_BYTES))
    except OSError:
        reserve.unlink(missing_ok=True)


def release_reserve(folder: Path) -> bool:
    """Give a session's reserved space back to the disk; False if there was none."""
    try:
        (folder / RESERVE_FILE).unlink()
    except OSError:
        return False
    return True


def staged_file(spool: Path, relative: str) -> Path | None:
    """The staged artifact ``relative`` of ``spool``'s run, or None if it is not a path nbtrack
    staged in the run's own ``.files`` folder: absolute, climbing out with ``..``, or through a
    link, the ``.files`` folder itself included (a journal only uploads what nbtrack itself
    staged there). Each step is looked at with ``lstat``: no link is followed. A path that is
    gone is given back as it is (it vanished)."""
    parts = Path(relative).parts
    if not parts or Path(relative).is_absolute() or ".." in parts:
        return None
    steps = [spool.with_suffix(FILES_SUFFIX)]
    for part in parts:
        steps.append(steps[-1] / part)
    for step in steps:
        try:
            info = step.lstat()
        except FileNotFoundError:
            break  # gone: the caller says it vanished
        except OSError:
            return None
        if stat.S_ISLNK(info.st_mode):
            return None
    return steps[-1]


def staged_artifact(spool: Path, relative: str) -> Path | None:
    """The staged file or folder ``relative`` of ``spool``'s run, ready to upload; None (and a
    warning) if it is not one nbtrack staged (``staged_file``) or is gone. Only what the kernel
    staged in the run's own folder is uploaded, whatever a journal line says: a journal must
    not be able to send an arbitrary file of the user's. Staged copies hold no links (links are
    followed when staging), so a link found in a staged folder was put by someone else:
    removed, never followed; nothing is removed through a link (``staged_file`` refuses any on
    the way)."""
    path = staged_file(spool, relative)
    if path is None:
        log.warning("journal %s: artifact path %r is outside its staging folder or goes through "
                    "a link; skipped", spool.stem, relative)  # fmt: skip
        return None
    if not path.exists():
        log.warning("journal %s: artifact %s vanished before upload; skipped", spool.stem, path)
        return None
    for parent, folders, files in os.walk(path) if path.is_dir() else ():
        for name in [*folders, *files]:
            entry = Path(parent) / name
            if entry.is_symlink():
                log.warning("journal %s: %s is a link; not uploaded", spool.stem, name)
                entry.unlink()
    return path
