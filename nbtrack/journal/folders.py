"""Where journals live on disk, and the files around them.

The spool root holds one *session* folder per kernel and tracking store::

    <spool root>/                  0700
      <session>/                   0700, one kernel and one store
        session.json               kernel pid (+ start time), tracking URI, format version
        worker.lock                flock-ed by the sync process uploading this session
        worker.log                 the sync process's own log (no credentials in it)
        status.json                the sync process's view of the store: reachable or not, why
        hurry                      exists while the kernel waits for the upload: no pacing then
        <run>.spool                the run's journal, appended by the kernel (format.py)
        <run>.state                the sync process's progress: acknowledged offset, run id
        <run>.files/               copies of the run's artifacts, staged by the kernel
        <run>.system               system metrics samples the sync process took for the run,
                                   for the kernel's live view and record (journal/system.py)
        <run>.rejected             what the store refused for good, kept with the reason

Everything here is created private to its owner whatever the umask (``nbtrack._files``):
params, tags and code are in these files. A folder that another user owns, or could write to,
is never read back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from nbtrack import _platform
from nbtrack._files import is_private, open_private, read_json, write_json_atomic
from nbtrack._settings import cache_dir, settings
from nbtrack.journal.format import FORMAT_VERSION

__all__ = [
    "FILES_SUFFIX",
    "HURRY_FILE",
    "SPOOL_SUFFIX",
    "STATE_SUFFIX",
    "STATUS_FILE",
    "SessionInfo",
    "SessionLock",
    "is_orphan",
    "pending_spools",
    "session_folders",
    "spool_root",
    "staged_file",
]

SPOOL_SUFFIX = ".spool"
STATE_SUFFIX = ".state"
FILES_SUFFIX = ".files"
HURRY_FILE = "hurry"
STATUS_FILE = "status.json"


def spool_root() -> Path:
    """``$NBTRACK_SPOOL_DIR``, else ``~/.cache/nbtrack/spool``."""
    return settings().spool_dir or cache_dir() / "spool"


@dataclass
class SessionInfo:
    """Who owns a session folder: the kernel's pid (and start time) and its store."""

    folder: Path
    kernel_pid: int
    kernel_start_ticks: int | None
    tracking_uri: str

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
                tracking_uri=str(content["tracking_uri"]),
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


def session_folders(root: Path) -> Iterator[Path]:
    """Session folders under ``root`` that this user may trust (see ``is_private``)."""
    if not is_private(root):
        return
    with contextlib.suppress(OSError):
        for folder in sorted(root.iterdir()):
            if folder.is_dir() and is_private(folder):
                yield folder


def staged_file(spool: Path, relative: str) -> Path | None:
    """The staged artifact ``relative`` of ``spool``'s run, or None if that path would leave the
    run's own ``.files`` folder (a journal only uploads what nbtrack itself staged there)."""
    base = spool.with_suffix(FILES_SUFFIX)
    target = (base / relative).resolve()
    if not target.is_relative_to(base.resolve()) or target == base.resolve():
        return None
    return target
