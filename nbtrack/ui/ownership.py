"""Whether a port and a process are this user's MLflow UI, on a machine shared with others.

A UI's command line, port included, is readable by every local user, and ``mlflow server``
imports for seconds before it binds its port: another user can listen there first and answer
``/health`` as MLflow does, or write an entry naming their server or someone else's process.
So nbtrack links and reuses a UI only while the sockets listening on its port are this user's
and held by the UI's own processes (``who_listens``), and signals a process group only when
its leader is this user's and runs the UI's command for that store (``is_ui_process``).

Linux tells both from ``/proc``. Without it (macOS, Windows) neither can be proven: callers
then fall back to ``/health`` for links and reuse, and stop only UIs they started themselves.
"""

from __future__ import annotations

import enum
import http.client
import os
from collections.abc import Sequence

from nbtrack import _platform
from nbtrack.ui import registry

__all__ = ["Listener", "answers_health", "is_ui_process", "who_listens"]

_GUARD = ["-m", "nbtrack.ui.guard"]
_PROBE_TIMEOUT_S = 2.0


class Listener(enum.Enum):
    """Who listens where a connection to a UI's 127.0.0.1 port arrives."""

    NOBODY = "nothing listens there yet"
    UI = "the UI's own processes"
    OTHER_USER = "another user's process"
    OTHER_PROGRAM = "another program of yours"
    UNKNOWN = "unknown here (no /proc)"


def who_listens(port: int, group: int) -> Listener:
    """Who listens on 127.0.0.1:``port``: the UI whose processes form process group ``group``
    (the UI's pid: it leads its own group), someone else, nobody, or unknown."""
    listeners = _platform.loopback_listeners(port)
    if listeners is None:
        return Listener.UNKNOWN
    if not listeners:
        return Listener.NOBODY
    if any(uid != os.getuid() for uid, _ in listeners):
        return Listener.OTHER_USER
    held = _platform.process_group_sockets(group) or set()
    # This user's socket, but not the UI's: a port the UI gave up and another program took.
    if any(inode not in held for _, inode in listeners):
        return Listener.OTHER_PROGRAM
    return Listener.UI


def is_ui_process(pid: int, command: Sequence[str], store_key: str) -> bool | None:
    """Whether ``pid`` is a UI nbtrack started: this user's, the leader of its own process group
    (what stopping it signals), running ``command`` (under nbtrack's guard or on its own, with
    any Python) for the store whose ``registry.key`` is ``store_key``. None where that cannot be
    known (no ``/proc``)."""
    if not _platform.reads_processes():
        return None
    if _platform.process_uids(pid) != (os.getuid(), os.getuid()):
        return False
    try:
        if os.getpgid(pid) != pid:
            return False
    except OSError:
        return False
    argv = [os.fsdecode(arg) for arg in _platform.process_command_line(pid) or []]
    if not _runs(argv[:-1] if argv[-1:] == [""] else argv, command):
        return False
    # The store reaches a UI in its environment (process.child_env), never on its command line.
    seen = _platform.process_cwd_and_environ(pid)
    store = None if seen is None else seen[1].get("MLFLOW_BACKEND_STORE_URI")
    return store is not None and registry.key(store) == store_key


def _runs(argv: list[str], command: Sequence[str]) -> bool:
    """Whether ``argv`` is ``command``, or ``command`` under the guard; the Python executables
    may differ (a kernel and ``nbtrack ui`` of different environments share one UI)."""
    wanted = list(command[1:])
    if argv[1:] == wanted:
        return True
    return argv[1:3] == _GUARD and argv[4:] == wanted


def answers_health(port: int) -> bool:
    """Whether an MLflow server answers ``GET /health`` with OK on 127.0.0.1:``port``: needed,
    never enough (anyone can answer so), hence ``who_listens``.

    http.client rather than urllib: urllib would route the probe through ``$http_proxy``.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=_PROBE_TIMEOUT_S)
    try:
        conn.request("GET", "/health")
        resp = conn.getresponse()
        return resp.status == 200 and resp.read(16).strip() == b"OK"
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
