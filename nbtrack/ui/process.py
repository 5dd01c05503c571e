"""MLflow UI processes: start one for a store, find the one already running, stop it.

``ensure_ui(uri)`` gives back a :class:`UiServer` for ``uri``: the MLflow UI that an earlier call
(from this process, another kernel, ``nbtrack ui`` or the Jupyter server extension) started for
the same store, or a new ``mlflow server`` bound to 127.0.0.1 on a free port. Which UI runs for
which store is kept in private registry files (``registry``); stale entries are removed.

Another local user can take a UI's port before MLflow binds it, or name their own server in an
entry. So a UI is given out only while it answers ``/health`` on a socket of its own processes,
and a process group is stopped only once its leader is proven to be the UI (``ownership``).

A UI on 127.0.0.1 has no login: every user of the machine can reach it. So a UI is tied to the
process that started it (``nbtrack.ui.guard``): it stops when that kernel or Jupyter server
ends, however it ends. The store's URI, which may hold a password, reaches ``mlflow server``
in its environment, never on its command line (which every local user can read).
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from nbtrack import _platform
from nbtrack._files import open_private
from nbtrack._redact import redact_text, strip_uri_credentials
from nbtrack.errors import UiStartError
from nbtrack.tracking import resolve_uri
from nbtrack.ui import registry
from nbtrack.ui.ownership import Listener, answers_health, is_ui_process, who_listens
from nbtrack.ui.registry import UiServer

__all__ = [
    "DEFAULT_START_TIMEOUT_S",
    "UiServer",
    "ensure_ui",
    "find_ui",
    "stop_owned_uis",
    "stop_ui",
]

#: How long ``ensure_ui`` waits for a new UI by default. ``mlflow server`` needs 5-30 s on a busy
#: two-core machine (imports, database migrations), so this is generous on purpose.
DEFAULT_START_TIMEOUT_S = 120.0

# UIs started by this process, kept so that their exit status is collected (no zombies while a
# long-lived kernel or Jupyter server runs) and the Popen objects are not garbage collected while
# the child still runs.
_children: dict[int, subprocess.Popen[bytes]] = {}
# Of those, the UIs tied to this process's life (their guard holds our pipe): stopped by
# stop_owned_uis, at exit at the latest.
_owned: set[int] = set()


def find_ui(tracking_uri: str | None = None) -> UiServer | None:
    """The MLflow UI already running for ``tracking_uri`` (default: the store ``resolve_uri``
    picks), or ``None``. An entry whose process is gone or is not this user's UI, or whose port
    does not answer ``/health`` from the UI's own socket, is deleted."""
    uri = resolve_uri(tracking_uri)
    if (server := registry.server_ui(uri)) is not None:
        return server
    try:
        entry = registry.entry_path(uri)
    except UiStartError:
        return None  # a registry another user could change is not read (ensure_ui says why)
    return _alive_entry(entry, uri)


def ensure_ui(
    tracking_uri: str | None = None,
    *,
    timeout: float = DEFAULT_START_TIMEOUT_S,
    owned: bool = True,
) -> UiServer:
    """An MLflow UI for ``tracking_uri`` (default: the store ``resolve_uri`` picks), started
    if none runs yet.

    For an MLflow tracking server (an http(s) store) that is the server's own UI. Otherwise a
    new UI is ``mlflow server`` bound to 127.0.0.1 on a free port. With ``owned`` (the
    default) it stops when this process ends, or at ``stop_owned_uis()``; without, it runs on
    its own until ``stop_ui`` (``nbtrack ui --no-wait``). Raises :class:`UiStartError` (with the
    end of the UI's log) when it exits early or does not answer within ``timeout`` seconds, or
    when someone else listened on each port it was given; it is stopped in those cases.
    """
    uri = resolve_uri(tracking_uri)
    if (server := registry.server_ui(uri)) is not None:
        return server  # a tracking server serves its own UI
    entry = registry.entry_path(uri)
    # One lock per store: two kernels asking at once must end up sharing one UI.
    with registry.locked(entry.with_suffix(".lock")):
        found = _alive_entry(entry, uri)
        if found is not None:
            return found
        ui = _start(uri, timeout, owned)
        registry.write_entry(entry, ui)
        return ui


def stop_owned_uis(timeout: float = 10.0) -> int:
    """Stop every UI this process started tied to its life (a kernel at exit, the Jupyter
    server when it stops); returns how many were running."""
    stopped = 0
    for pid in sorted(_owned):
        child = _children.get(pid)
        if child is not None and child.poll() is None:
            stopped += 1
            _forget_entries_of(pid)
            _terminate(pid, timeout)
        _owned.discard(pid)
    return stopped


def _forget_entries_of(pid: int) -> None:
    for entry in registry.state_dir().glob("*.json"):
        ui = registry.read_entry(entry)
        if ui is not None and ui.pid == pid:
            entry.unlink(missing_ok=True)


def stop_ui(tracking_uri: str | None = None, *, timeout: float = 10.0) -> bool:
    """Stop the MLflow UI running for ``tracking_uri``; ``False`` if there was none, or its
    entry names a process that cannot be proven to be that UI (which is left alone)."""
    uri = resolve_uri(tracking_uri)
    entry = registry.entry_path(uri)
    with registry.locked(entry.with_suffix(".lock")):
        ui = registry.read_entry(entry)
        entry.unlink(missing_ok=True)
        # A stale or forged entry's pid may belong to an unrelated process: signal only a process
        # group whose leader is proven to be this UI.
        if ui is None or not _is_our_ui(ui):
            return False
        _terminate(ui.pid, timeout)
        return True


def server_command(port: int) -> list[str]:
    """``mlflow server`` on 127.0.0.1:``port``; its store comes from ``child_env``."""
    # One worker: this UI serves one person; mlflow's default of 4 costs ~4 processes and memory.
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def child_env(uri: str) -> dict[str, str]:
    """The environment of a UI for ``uri``: the store in ``MLFLOW_BACKEND_STORE_URI`` (what
    ``mlflow server --backend-store-uri`` reads), so that a password in it is not on the
    process's command line."""
    env = dict(os.environ)
    env["MLFLOW_BACKEND_STORE_URI"] = uri
    # `python -m nbtrack.ui.guard` must find this very nbtrack, also from a source checkout.
    package_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    # The job runner (GenAI evaluation jobs) adds three processes and seconds of start-up to a UI
    # that only browses runs; a user who wants it can still set the variable.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return env


def _start(uri: str, timeout: float, owned: bool) -> UiServer:
    state = registry.state_dir()
    log_path = state / f"{registry.key(uri)}.log"
    cwd = _store_folder(uri) or state
    deadline = time.monotonic() + timeout
    # A free port can be taken by someone else between our probe and mlflow's bind, by chance or
    # by another user watching for UIs to start: try again with another port when that happens.
    for _attempt in range(3):
        port = _free_port()
        log = _open_log(log_path)
        command = server_command(port)
        if owned:
            command = [sys.executable, "-m", "nbtrack.ui.guard", *command]
        with log:
            proc = subprocess.Popen(  # noqa: S603 (fixed argv, no shell)
                command,
                # An owned UI's guard stops it when this end of the pipe closes.
                stdin=subprocess.PIPE if owned else subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=child_env(uri),
                start_new_session=True,
            )
        _children[proc.pid] = proc
        if owned:
            _owned.add(proc.pid)
            _stop_owned_at_exit()
        ui = UiServer(
            tracking_uri=strip_uri_credentials(uri),
            url=registry.local_url(port),
            pid=proc.pid,
            port=port,
            log_path=str(log_path),
            store_key=registry.key(uri),
        )
        outcome = _wait_until_ready(proc, port, deadline)
        if outcome is _Start.READY:
            return ui
        if outcome is not _Start.EXITED:  # it hangs, or someone else listens on its port
            _terminate(proc.pid, 5.0)
        if outcome is _Start.TIMEOUT:
            shown = strip_uri_credentials(uri)
            msg = (
                f"the MLflow UI for {shown} did not answer on port {port} within {timeout:.0f} s"
                f"; end of its log ({log_path}):\n{registry.log_tail(log_path)}"
            )
            raise UiStartError(msg)
        tail = registry.log_tail(log_path)
        if outcome is _Start.EXITED and "address already in use" not in tail.lower():
            break
    raise UiStartError(_failure(uri, outcome, proc.returncode, log_path, tail))


def _open_log(path: Path) -> IO[bytes]:
    """The UI's log, emptied. Private like the registry: MLflow may echo the store URI, password
    included. Never opened through a link, which nbtrack does not make: the log would overwrite
    whatever it points at."""
    try:
        return open_private(path, "wb")
    except OSError as error:
        msg = (
            f"cannot write the MLflow UI's log {path} ({error.strerror or error}); remove it if "
            "it is a link, and try again"
        )
        raise UiStartError(msg) from error


def _failure(uri: str, outcome: _Start, status: int | None, log_path: Path, tail: str) -> str:
    shown = strip_uri_credentials(uri)
    tail = redact_text(tail)  # MLflow may print the store's URI, credentials and all
    if outcome is _Start.EXITED:
        return (
            f"the MLflow UI for {shown} exited with status {status} before it answered; end of "
            f"its log ({log_path}):\n{tail}"
        )
    return (
        f"the MLflow UI for {shown} did not start: each port it was given on 127.0.0.1 was taken "
        f"first by {outcome.value}, and nbtrack links no UI it cannot prove is yours (another "
        "user may be watching for UIs to start, to answer in their place). Try again, or use the "
        "UI through Jupyter, behind its login (`pip install nbtrack[proxy]`)."
    )


class _Start(enum.Enum):
    """How the wait for a new UI ended; a port taken by someone else says by whom."""

    READY = "ready"
    EXITED = "exited"
    TIMEOUT = "timeout"
    OTHER_USER = Listener.OTHER_USER.value
    OTHER_PROGRAM = Listener.OTHER_PROGRAM.value


def _wait_until_ready(proc: subprocess.Popen[bytes], port: int, deadline: float) -> _Start:
    """Wait for the UI ``proc`` (the leader of its process group) to answer ``/health`` on
    ``port`` from a socket of its own."""
    while time.monotonic() < deadline:
        listening = who_listens(port, proc.pid)
        if listening in (Listener.OTHER_USER, Listener.OTHER_PROGRAM):
            return _Start(listening.value)
        if proc.poll() is not None:
            return _Start.EXITED
        # /health first, then the listener again: what answered must be the UI's own socket
        # (no one else can bind the port while that one listens). Without /proc, /health alone.
        if (
            listening is not Listener.NOBODY
            and answers_health(port)
            and who_listens(port, proc.pid) in (Listener.UI, Listener.UNKNOWN)
        ):
            return _Start.READY
        time.sleep(0.25)
    return _Start.TIMEOUT


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a child of this process that ended is reaped)."""
    child = _children.get(pid)
    if child is not None:
        # Our own child: poll() reaps it, so a dead UI does not linger as a zombie that
        # os.kill(pid, 0) would still report as alive.
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def _is_our_ui(ui: UiServer) -> bool:
    """Whether ``ui.pid`` runs the UI this entry describes: the only process group that may be
    signalled. Decided from the process itself, never from what answers on its port."""
    proven = is_ui_process(ui.pid, server_command(ui.port), ui.store_key)
    if proven is not None:
        return proven
    # No /proc (macOS, Windows): only a UI this very process started is known to be ours.
    child = _children.get(ui.pid)
    return child is not None and child.poll() is None


def _serves(ui: UiServer) -> bool | None:
    """Whether ``ui`` may be linked and reused: its process is the UI, and it answers
    ``/health`` from a socket of its own. None: the process is the UI but does not answer
    right now."""
    proven = is_ui_process(ui.pid, server_command(ui.port), ui.store_key)
    # Without /proc, a live process that answers /health, as before: the registry is private.
    if proven is False or (proven is None and not pid_alive(ui.pid)):
        return False
    if not answers_health(ui.port):
        return None
    return who_listens(ui.port, ui.pid) in (Listener.UI, Listener.UNKNOWN)


def _terminate(pid: int, timeout: float) -> None:
    """Stop the UI's whole process group (mlflow server and its uvicorn worker)."""
    _platform.stop_process_group(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            break
        time.sleep(0.1)
    else:
        _platform.stop_process_group(pid, force=True)
    child = _children.pop(pid, None)
    _owned.discard(pid)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5.0)
        if child.stdin is not None:
            with contextlib.suppress(OSError):
                child.stdin.close()


def _alive_entry(entry: Path, uri: str) -> UiServer | None:
    ui = registry.read_entry(entry)
    if ui is None:
        return None
    serves = ui.store_key == registry.key(uri) and _serves(ui)
    if serves is None:
        return None  # its own, but not answering just now (a busy machine): kept for later
    if serves:
        return ui
    entry.unlink(missing_ok=True)
    return None


def _store_folder(uri: str) -> Path | None:
    """Folder of a SQLite store: the UI runs there, so artifacts of experiments created in the UI
    land next to the database (MLflow's ``./mlartifacts``)."""
    if uri.startswith("sqlite:////"):
        folder = Path(uri[len("sqlite:///") :].partition("?")[0]).parent
        return folder if folder.is_dir() else None
    return None


_exit_hook = False


def _stop_owned_at_exit() -> None:
    global _exit_hook  # noqa: PLW0603 - registered once per process
    if not _exit_hook:
        _exit_hook = True
        # The guard would stop them anyway once this process is gone; stopping them here
        # also removes their registry entries.
        atexit.register(stop_owned_uis, 5.0)
