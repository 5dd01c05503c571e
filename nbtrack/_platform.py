"""The few operating-system calls that only POSIX has, each with its fallback.

The rest of the package calls these and has no platform branches of its own.

- File locks: ``flock`` on POSIX; on Windows ``msvcrt.locking`` on the file's first byte. A wait
  for a lock is bounded (polled): a holder that hangs must not hang its waiters.
- Lowering a process's priority: ``os.nice``; elsewhere nothing.
- Waiting for a pipe to have data: ``select``; elsewhere a plain sleep.
- Whether a process is alive, told apart from a later process that got the same pid: the
  start time from ``/proc`` on Linux; elsewhere a pid that answers signal 0 counts as alive.
- How much CPU the machine leaves idle: ``/proc/stat`` on Linux; elsewhere the load average;
  where neither exists, nothing is known.
- Another process's working folder, environment, command line, user and open sockets:
  ``/proc`` on Linux; elsewhere unknown.
- Who listens on a loopback port (the owner and inode of the socket): ``/proc/net/tcp`` and
  ``tcp6`` on Linux; elsewhere unknown.
- Stopping a process group (an MLflow UI and its workers): ``killpg``; elsewhere the process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from typing import IO, Any

__all__ = [
    "IdleCpu",
    "loopback_listeners",
    "lower_priority",
    "process_alive",
    "process_command_line",
    "process_cwd_and_environ",
    "process_group_sockets",
    "process_start_ticks",
    "process_uids",
    "reads_processes",
    "stop_process_group",
    "try_lock",
    "unlock",
    "wait_readable",
]

# Pauses between tries while waiting for a lock: short at first, as most locks are held briefly.
_LOCK_PAUSE_S = (0.01, 0.2)


def try_lock(handle: IO[Any], *, wait: float = 0.0) -> bool:
    """Lock ``handle``'s file for this process, waiting up to ``wait`` seconds while another
    holds it; False if it still does then."""
    deadline = time.monotonic() + wait
    pause, longest = _LOCK_PAUSE_S
    while not _lock_now(handle):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(pause, left))
        pause = min(2 * pause, longest)
    return True


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock_now(handle: IO[Any]) -> bool:
        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def unlock(handle: IO[Any]) -> None:
        handle.seek(0)
        with contextlib.suppress(OSError):
            msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock_now(handle: IO[Any]) -> bool:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def unlock(handle: IO[Any]) -> None:
        fcntl.flock(handle, fcntl.LOCK_UN)


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks (Linux), to tell a pid from a reused one."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


def process_alive(pid: int, start_ticks: int | None) -> bool:
    """Whether process ``pid`` runs and is the one that had ``start_ticks`` (when known)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # (a pid past any a system gives: 1e30)
        return False
    except PermissionError:
        return True
    except OSError:  # Windows: signal 0 is not supported for every process
        return True
    stat = _stat_fields(pid)
    if stat is None:
        return True
    if start_ticks is not None and int(stat[19]) != start_ticks:
        return False
    # A killed child that its parent has not reaped yet still answers signal 0.
    return stat[0] != "Z"


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3 on of /proc/PID/stat (state, ppid, ...): the command name (field 2) may contain
    spaces and parentheses, so the line is split after its last ')'."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def wait_readable(fd: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``fd`` (a pipe) to have data or reach its end; True
    if it did. Without ``select`` on pipes (Windows) this just sleeps and says False."""
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import time

        time.sleep(timeout)
        return False
    import select

    readable, _, _ = select.select([fd], [], [], timeout)
    return bool(readable)


def lower_priority(niceness: int) -> None:
    """Make this process yield the CPU to others (``os.nice``); a no-op where there is none."""
    nice = getattr(os, "nice", None)
    if nice is not None:
        nice(niceness)


class IdleCpu:
    """How many cores the machine left idle between two readings (Linux: ``/proc/stat``);
    elsewhere the cores the load average leaves free; None where neither is known."""

    def __init__(self) -> None:
        self._last = self._idle_seconds()

    def restart(self) -> None:
        """Let the next reading cover only the time from now."""
        self._last = self._idle_seconds()

    @staticmethod
    def _idle_seconds() -> tuple[float, float] | None:
        try:
            with open("/proc/stat", "rb") as stat:
                fields = stat.readline().split()  # cpu user nice system idle iowait ...
            idle = (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError, AttributeError):
            return None
        return time.monotonic(), idle

    def cores(self) -> float | None:
        now = self._idle_seconds()
        if now is not None and self._last is not None and now[0] > self._last[0]:
            idle = (now[1] - self._last[1]) / (now[0] - self._last[0])
            self._last = now
            return max(0.0, idle)
        self._last = now
        getloadavg = getattr(os, "getloadavg", None)
        if now is None and getloadavg is not None:
            return max(0.0, float(os.cpu_count() or 1) - float(getloadavg()[0]))
        return None


def process_cwd_and_environ(pid: int) -> tuple[Path, dict[str, str]] | None:
    """Another process's working folder and environment (Linux ``/proc``, this user's processes
    only), or None where they cannot be read."""
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return cwd, {k.decode(errors="replace"): v.decode(errors="replace") for k, _, v in pairs}


def process_command_line(pid: int) -> list[bytes] | None:
    """Another process's command line, one item per argument (Linux ``/proc``), or None where
    it cannot be read."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None


def reads_processes() -> bool:
    """Whether other processes can be looked at here (Linux ``/proc``)."""
    return os.path.isdir("/proc/self/fd")


def process_uids(pid: int) -> tuple[int, int] | None:
    """A process's real and effective user ids (Linux ``/proc``), or None where they cannot be
    read (no such process, or no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as status:
            for line in status:
                if line.startswith("Uid:"):
                    real, effective = line.split()[1:3]
                    return int(real), int(effective)
    except (OSError, ValueError):
        return None
    return None


def process_group_sockets(group: int) -> set[int] | None:
    """Inodes of the sockets the processes of process group ``group`` hold open (Linux
    ``/proc``; only this user's processes can be read), or None without ``/proc``."""
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return None
    held: set[int] = set()
    for pid in pids:
        fields = _stat_fields(int(pid))
        if fields is None or int(fields[2]) != group:
            continue
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to read
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        held.add(int(target[len("socket:[") : -1]))
    return held


_TCP_LISTEN = "0A"
# The local addresses at which a connection to 127.0.0.1 can arrive: 127.0.0.1 itself and every
# address (a "::" socket takes IPv4 too unless its owner set IPV6_V6ONLY, which /proc hides).
_REACH_LOOPBACK = frozenset({"127.0.0.1", "0.0.0.0", "::", "::ffff:127.0.0.1", "::ffff:0.0.0.0"})  # noqa: S104


def loopback_listeners(port: int) -> list[tuple[int, int]] | None:
    """The TCP sockets listening where a connection to 127.0.0.1:``port`` can arrive, as
    ``(uid, inode)`` pairs (Linux ``/proc/net/tcp`` and ``tcp6``), or None where that cannot
    be read."""
    try:
        found = _listeners("/proc/net/tcp", socket.AF_INET, port)
    except (OSError, ValueError, IndexError):
        return None
    with contextlib.suppress(OSError):  # a machine without IPv6 has no tcp6 table
        found += _listeners("/proc/net/tcp6", socket.AF_INET6, port)
    return found


def _listeners(table: str, family: int, port: int) -> list[tuple[int, int]]:
    found = []
    with open(table, encoding="ascii") as lines:
        next(lines, None)  # the header
        for line in lines:
            fields = line.split()  # sl local rem st queues tr retrnsmt uid timeout inode ...
            address, _, port_hex = fields[1].partition(":")
            if fields[3] != _TCP_LISTEN or int(port_hex, 16) != port:
                continue
            if _table_address(address, family) in _REACH_LOOPBACK:
                found.append((int(fields[7]), int(fields[9])))
    return found


def _table_address(hex_words: str, family: int) -> str:
    """An address as the kernel prints it in /proc/net/tcp*: 32-bit words in the machine's own
    byte order."""
    words = [int(hex_words[i : i + 8], 16) for i in range(0, len(hex_words), 8)]
    return socket.inet_ntop(family, struct.pack(f"={len(words)}I", *words))


def stop_process_group(group: int, force: bool = False) -> None:
    """SIGTERM, or with ``force`` SIGKILL, to every process of ``group``; where there are no
    process groups, to the process ``group`` itself. One that is gone already, or is not
    ours, is left alone."""
    sig = getattr(signal, "SIGKILL", signal.SIGTERM) if force else signal.SIGTERM
    killpg = getattr(os, "killpg", None)
    with contextlib.suppress(OSError):
        if killpg is not None:
            killpg(group, sig)
        else:  # pragma: no cover - Windows
            os.kill(group, sig)
