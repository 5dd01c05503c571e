"""The spool: where it lives, what a session folder holds, and its line format.

A *session* folder belongs to one kernel::

    <spool root>/<session id>/
        session.json        kernel pid (+ start time), tracking URI, sync process pid
        worker.lock         flock-ed by the live sync process; free means nobody uploads it
        worker.log          the sync process's own log
        hurry               exists while the kernel waits for the upload: no pacing then
        <run>.spool         one JSON document per line, appended by the kernel
        <run>.state         written by the sync process: acknowledged offset, MLflow run id
        <run>.files/        artifact copies waiting for upload
        <run>.rejected      batches the store refused for good, kept with the reason

Lines of a ``.spool`` (``t`` is the kind):
``start`` (run identity, tags), ``b`` (metrics, below), ``p`` (params), ``g`` (tags),
``a`` (artifact path), ``end`` (status, end time, error).

A ``b`` line holds one batch of metric points as packed little-endian arrays in base64, which
the kernel writes without a Python-level loop over points (JSON numbers would cost it ~0.3 us
per point): ``{"t": "b", "ts": [seconds...], "m": {key: [steps, values, ts_index]}}``.
``ts`` lists float64 arrays of unix times, one per group of metrics logged by the same calls;
``values`` is a float64 array; ``steps`` is either the first step of consecutive steps (an int)
or an int64 array.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import sys
import tempfile
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

SPOOL_SUFFIX = ".spool"
STATE_SUFFIX = ".state"
# Present in a session folder while the kernel waits for the upload (``nbtrack.wait()``).
HURRY_FILE = "hurry"
_END_LINE = b'{"t":"end"'


def spool_root() -> Path:
    """``$NBTRACK_SPOOL_DIR``, else ``$XDG_CACHE_HOME/nbtrack/spool`` (``~/.cache/...``)."""
    explicit = os.environ.get("NBTRACK_SPOOL_DIR")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "nbtrack" / "spool"


def encode(record: dict[str, Any]) -> bytes:
    # NaN and inf are legal metric values; Python's json writes and reads them as NaN/Infinity.
    return json.dumps(record, separators=(",", ":"), allow_nan=True).encode() + b"\n"


def pack(values: array[Any]) -> str:
    """An array as base64 of its little-endian bytes (a spool may be read on another machine)."""
    if sys.byteorder != "little":
        values = array(values.typecode, values)
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode("ascii")


def unpack(text: str, typecode: str) -> array[Any]:
    values = array(typecode)
    values.frombytes(base64.b64decode(text))
    if sys.byteorder != "little":
        values.byteswap()
    return values


def read_lines(path: Path, offset: int, max_bytes: int) -> Iterator[tuple[dict[str, Any], int]]:
    """Complete lines from ``offset`` on, each with the offset just past it.

    A last line without its newline is a write in progress (or torn by a crash) and is left
    for later; nothing is read past ``max_bytes`` (bounded memory however big the spool is).
    """
    with path.open("rb") as handle:
        handle.seek(offset)
        data = handle.read(max_bytes)
    end = data.rfind(b"\n")
    if end < 0:
        if len(data) >= max_bytes:  # one line longer than max_bytes: read it whole
            with path.open("rb") as handle:
                handle.seek(offset)
                line = handle.readline()
            if line.endswith(b"\n"):
                yield json.loads(line), offset + len(line)
        return
    position = offset
    for line in data[: end + 1].splitlines(keepends=True):
        position += len(line)
        if line.strip():
            yield json.loads(line), position


def run_ended(path: Path) -> bool:
    """Whether the kernel wrote a spool's ``end`` line: it is always the last line."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - 256))
            tail = handle.read()
    except OSError:
        return False
    return _END_LINE in tail[tail.rfind(b"\n", 0, len(tail) - 1) + 1 :]


def write_json_atomic(path: Path, content: dict[str, Any]) -> None:
    """Replace ``path`` so that a reader (or a crash) sees the old or the new file, never half."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(handle, "w") as out:
        json.dump(content, out)
    os.replace(temp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        with path.open() as handle:
            content: dict[str, Any] = json.load(handle)
            return content
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks (Linux), to tell a pid from a reused one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields after it are space separated.
    return int(stat.rsplit(")", 1)[1].split()[19])


def process_alive(pid: int, start_ticks: int | None) -> bool:  # noqa: PLR0911 - one answer per case
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if start_ticks is None:
        return True
    now = process_start_ticks(pid)
    if now is None:
        return True
    if now != start_ticks:
        return False
    # A killed child that its parent has not reaped yet still answers signal 0.
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True


@dataclass
class SessionInfo:
    folder: Path
    kernel_pid: int
    kernel_start_ticks: int | None
    tracking_uri: str

    @classmethod
    def load(cls, folder: Path) -> SessionInfo | None:
        content = read_json(folder / "session.json")
        if content is None:
            return None
        return cls(
            folder=folder,
            kernel_pid=int(content["kernel_pid"]),
            kernel_start_ticks=content.get("kernel_start_ticks"),
            tracking_uri=str(content["tracking_uri"]),
        )

    def save(self) -> None:
        write_json_atomic(
            self.folder / "session.json",
            {
                "kernel_pid": self.kernel_pid,
                "kernel_start_ticks": self.kernel_start_ticks,
                "tracking_uri": self.tracking_uri,
            },
        )

    def kernel_alive(self) -> bool:
        return process_alive(self.kernel_pid, self.kernel_start_ticks)


class SessionLock:
    """The exclusive lock a sync process holds on the session it uploads."""

    def __init__(self, folder: Path) -> None:
        self._path = folder / "worker.lock"
        self._handle: BinaryIO | None = None

    def acquire(self) -> bool:
        handle = self._path.open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
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
