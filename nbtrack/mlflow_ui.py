"""A local MLflow UI per tracking store: start one, find the one already running, stop it.

``ensure_ui(uri)`` gives back a :class:`UiServer` for ``uri``: the MLflow UI that an earlier call
(from this process, another kernel, ``nbtrack ui`` or the Jupyter server extension) started for the
same store, or a new ``mlflow server`` bound to 127.0.0.1 on a free port. The UI runs detached, in
its own session, so it outlives the kernel or command that started it. A small registry file per
store (pid, port, store) under ``$NBTRACK_STATE_DIR/ui`` (default ``~/.cache/nbtrack/ui``) lets
later callers find it; an entry is trusted only after the UI answers ``/health``, and stale entries
are removed.

The module also holds the jupyter-server-proxy entry point that serves an MLflow UI as
``<base_url>mlflow/`` inside the Jupyter server, for setups where the browser cannot reach the
kernel's machine directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nbtrack.errors import UiStartError
from nbtrack.secrets import strip_uri_credentials

if sys.platform != "win32":
    import fcntl

__all__ = [
    "UiServer",
    "UiStartError",
    "default_tracking_uri",
    "ensure_ui",
    "find_ui",
    "main",
    "stop_ui",
    "ui_link_html",
]

STATE_DIR_ENV = "NBTRACK_STATE_DIR"
#: How long ``ensure_ui`` waits for a new UI by default. ``mlflow server`` needs 5-30 s on a busy
#: two-core machine (imports, database migrations), so this is generous on purpose.
DEFAULT_START_TIMEOUT_S = 120.0
_PROBE_TIMEOUT_S = 2.0
_LOG_TAIL_CHARS = 3000

# UIs started by this process, kept so that their exit status is collected (no zombies while a
# long-lived kernel or Jupyter server runs) and the Popen objects are not garbage collected while
# the child still runs.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class UiServer:
    """A running MLflow UI.

    ``url`` is the UI's root (``http://127.0.0.1:<port>/``); ``tracking_uri`` is the store as the
    UI was started with it, which may hold credentials: never display it.
    """

    tracking_uri: str
    url: str
    pid: int
    port: int
    log_path: str

    def run_url(self, experiment_id: str, run_id: str) -> str:
        """Address of one run's page in this UI."""
        return f"{self.url}#/experiments/{experiment_id}/runs/{run_id}"


def default_tracking_uri() -> str:
    """The store MLflow itself would use here: ``$MLFLOW_TRACKING_URI``, else ``./mlflow.db``."""
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env:
        return canonical_uri(env)
    return f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"


def find_ui(tracking_uri: str | None = None) -> UiServer | None:
    """The MLflow UI already running for ``tracking_uri`` (default: :func:`default_tracking_uri`),
    or ``None``. An entry whose process is gone or does not answer ``/health`` is deleted."""
    uri = canonical_uri(tracking_uri) if tracking_uri else default_tracking_uri()
    return _alive_entry(_entry_path(uri), uri)


def ensure_ui(
    tracking_uri: str | None = None, *, timeout: float = DEFAULT_START_TIMEOUT_S
) -> UiServer:
    """An MLflow UI for ``tracking_uri`` (default: :func:`default_tracking_uri`), started if none
    runs yet.

    A new UI is ``mlflow server`` bound to 127.0.0.1 on a free port, detached from the caller.
    Raises :class:`UiStartError` (with the end of the UI's log) when it exits early or does not
    answer within ``timeout`` seconds; it is stopped in that case.
    """
    uri = canonical_uri(tracking_uri) if tracking_uri else default_tracking_uri()
    entry = _entry_path(uri)
    # One lock per store: two kernels asking at once must end up sharing one UI.
    with _locked(entry.with_suffix(".lock")):
        found = _alive_entry(entry, uri)
        if found is not None:
            return found
        ui = _start(uri, timeout)
        _write_private(entry, json.dumps(_to_json(ui)))
        return ui


def stop_ui(tracking_uri: str | None = None, *, timeout: float = 10.0) -> bool:
    """Stop the MLflow UI running for ``tracking_uri``; ``False`` if there was none."""
    uri = canonical_uri(tracking_uri) if tracking_uri else default_tracking_uri()
    entry = _entry_path(uri)
    with _locked(entry.with_suffix(".lock")):
        ui = _read_entry(entry)
        entry.unlink(missing_ok=True)
        # A stale entry's pid may since belong to an unrelated process: signal only a process
        # that still is this UI.
        if ui is None or not _pid_alive(ui.pid) or not _is_our_ui(ui):
            return False
        _terminate(ui.pid, timeout)
        return True


def ui_link_html(ui: UiServer, proxy_url: str | None = None) -> str:
    """A small HTML snippet linking to ``ui``; every value in it is escaped.

    ``proxy_url`` is the same store's UI as served through the Jupyter server
    (jupyter-server-proxy, ``<base_url>mlflow/``), shown as a second link for browsers that
    cannot reach 127.0.0.1 of the kernel's machine. It is used only when it is an http(s) URL or
    an absolute path.
    """
    local = html.escape(ui.url, quote=True)
    parts = [f'MLflow UI: <a href="{local}" target="_blank" rel="noopener noreferrer">{local}</a>']
    if proxy_url and _is_link_safe(proxy_url):
        proxied = html.escape(proxy_url, quote=True)
        parts.append(
            f'(through Jupyter: <a href="{proxied}" target="_blank" '
            f'rel="noopener noreferrer">{proxied}</a>)'
        )
    return f'<div class="nbtrack-ui-link">{" ".join(parts)}</div>'


def main(tracking_uri: str | None, wait: bool) -> int:
    """``nbtrack ui``: print the address of an MLflow UI for the store; with ``wait`` keep the
    command in the foreground until Ctrl-C, then stop the UI if this command started it."""
    uri = canonical_uri(tracking_uri) if tracking_uri else default_tracking_uri()
    already = find_ui(uri)
    try:
        ui = already or ensure_ui(uri)
    except UiStartError as exc:
        print(f"nbtrack ui: {exc}", file=sys.stderr)
        return 1
    print(ui.url, flush=True)
    if not wait:
        return 0
    print(
        f"MLflow UI for {strip_uri_credentials(uri)} (pid {ui.pid}); press Ctrl-C to stop it.",
        file=sys.stderr,
        flush=True,
    )
    # `kill` (a closing terminal, a process manager) should stop the UI like Ctrl-C does.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        while _pid_alive(ui.pid):
            time.sleep(1.0)
    except KeyboardInterrupt:
        # A UI that was already running belongs to someone else (a kernel, another shell):
        # leave it; stop only the one this command started.
        if already is None:
            stop_ui(uri)
        return 0
    print(f"nbtrack ui: the MLflow UI exited; its log is {ui.log_path}", file=sys.stderr)
    return 1


def _raise_keyboard_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


# --- jupyter-server-proxy entry point --------------------------------------------------------


def _jupyter_server_proxy_config() -> dict[str, Any]:
    """Configuration for jupyter-server-proxy: an MLflow UI at ``<base_url>mlflow/``.

    The proxy strips ``<base_url>mlflow`` before forwarding (``absolute_url`` False), and MLflow's
    UI loads its assets and calls its API with relative URLs, so it needs no ``--static-prefix``.
    The Host header is rewritten to the UI's own address because MLflow rejects Host names
    other than localhost and private addresses (DNS-rebinding protection); the proxy itself is
    behind Jupyter's authentication. The Origin header is left alone: MLflow refuses state-changing
    API calls (the UI's run searches are POSTs) from origins other than localhost, so a browser
    reaching Jupyter under another name needs that origin in ``MLFLOW_SERVER_CORS_ALLOWED_ORIGINS``
    in the Jupyter server's environment; rewriting it here would switch off MLflow's CSRF guard,
    which the proxy (it skips Jupyter's XSRF check) leaves as the only one. The store is the
    Jupyter server's ``$MLFLOW_TRACKING_URI``, else ``mlflow.db`` in the folder the server was
    started from.
    """
    return {
        "command": _proxy_command,
        "environment": _proxy_environment,
        "timeout": DEFAULT_START_TIMEOUT_S,
        "absolute_url": False,
        "request_headers_override": {"Host": "127.0.0.1:{port}"},
        "new_browser_tab": True,
        "launcher_entry": {"title": "MLflow", "enabled": True},
    }


def _proxy_command(port: int) -> list[str]:
    return _server_command(default_tracking_uri(), port)


def _proxy_environment() -> dict[str, str]:
    # jupyter-server-proxy layers this over the server's own environment.
    return {key: value for key, value in _child_env().items() if key not in os.environ}


# --- internals -------------------------------------------------------------------------------


def _server_command(uri: str, port: int) -> list[str]:
    # One worker: this UI serves one person; mlflow's default of 4 costs ~4 processes and memory.
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # The job runner (GenAI evaluation jobs) adds three processes and seconds of start-up to a UI
    # that only browses runs; a user who wants it can still set the variable.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return env


def _start(uri: str, timeout: float) -> UiServer:
    state = _state_dir()
    log_path = state / f"{_key(uri)}.log"
    cwd = _store_folder(uri) or state
    deadline = time.monotonic() + timeout
    # A free port can be taken by someone else between our probe and mlflow's bind: try again
    # with another port when that is why the UI died.
    for _attempt in range(3):
        port = _free_port()
        # Private like the registry: MLflow may echo the store URI, password included.
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(log_fd, "wb") as log:
            proc = subprocess.Popen(  # noqa: S603 (fixed argv, no shell)
                _server_command(uri, port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=_child_env(),
                start_new_session=True,
            )
        _children[proc.pid] = proc
        ui = UiServer(
            tracking_uri=uri,
            url=f"http://127.0.0.1:{port}/",
            pid=proc.pid,
            port=port,
            log_path=str(log_path),
        )
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if _healthy(port):
                return ui
            time.sleep(0.25)
        else:
            _terminate(proc.pid, 5.0)
            shown = strip_uri_credentials(uri)
            msg = (
                f"the MLflow UI for {shown} did not answer on port {port} within {timeout:.0f} s"
                f"; end of its log ({log_path}):\n{_log_tail(log_path)}"
            )
            raise UiStartError(msg)
        tail = _log_tail(log_path)
        if "address already in use" not in tail.lower():
            break
    msg = (
        f"the MLflow UI for {strip_uri_credentials(uri)} exited with status {proc.returncode} "
        f"before it answered; end of its log ({log_path}):\n{tail}"
    )
    raise UiStartError(msg)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _healthy(port: int) -> bool:
    """Whether an MLflow server answers ``GET /health`` with OK on 127.0.0.1:``port``.

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


def _pid_alive(pid: int) -> bool:
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
    if _healthy(ui.port):
        return True
    try:  # a UI that hangs does not answer /health; on Linux its command line still tells
        argv = Path(f"/proc/{ui.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"mlflow" in argv and str(ui.port).encode() in argv


def _terminate(pid: int, timeout: float) -> None:
    """Stop the UI's whole process group (mlflow server and its uvicorn worker)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            break
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    child = _children.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5.0)


def _alive_entry(entry: Path, uri: str) -> UiServer | None:
    ui = _read_entry(entry)
    if ui is None:
        return None
    if ui.tracking_uri == uri and _pid_alive(ui.pid) and _healthy(ui.port):
        return ui
    entry.unlink(missing_ok=True)
    return None


def _read_entry(entry: Path) -> UiServer | None:
    try:
        data = json.loads(entry.read_text(encoding="utf-8"))
        return UiServer(
            tracking_uri=str(data["tracking_uri"]),
            url=str(data["url"]),
            pid=int(data["pid"]),
            port=int(data["port"]),
            log_path=str(data["log_path"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        # Unreadable or from another version: forget it rather than fail the caller.
        entry.unlink(missing_ok=True)
        return None


def _to_json(ui: UiServer) -> dict[str, Any]:
    return {
        "tracking_uri": ui.tracking_uri,
        "url": ui.url,
        "pid": ui.pid,
        "port": ui.port,
        "log_path": ui.log_path,
        "started": time.time(),
    }


def _state_dir() -> Path:
    root = os.environ.get(STATE_DIR_ENV)
    if root:
        base = Path(root)
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        base = Path(cache) / "nbtrack"
    folder = base / "ui"
    # Private: entries hold the store URI, which may carry a database password.
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def _key(uri: str) -> str:
    return hashlib.sha256(uri.encode("utf-8")).hexdigest()[:20]


def _entry_path(uri: str) -> Path:
    return _state_dir() / f"{_key(uri)}.json"


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if sys.platform != "win32":
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def canonical_uri(uri: str) -> str:
    """One spelling per store, so that the registry finds a UI whichever way it was named:
    relative SQLite paths and bare folder paths become absolute."""
    uri = uri.strip()
    if uri.startswith("sqlite:///"):
        path, sep, query = uri[len("sqlite:///") :].partition("?")
        if path and not path.startswith("/"):
            # MLflow reads sqlite:///name.db relative to the working directory.
            path = str((Path.cwd() / path).resolve())
        return f"sqlite:///{path}{sep}{query}"
    if "://" not in uri and not uri.startswith(("databricks", "file:")):
        return str(Path(uri).expanduser().resolve())
    return uri


def _store_folder(uri: str) -> Path | None:
    """Folder of a SQLite store: the UI runs there, so artifacts of experiments created in the UI
    land next to the database (MLflow's ``./mlartifacts``)."""
    if uri.startswith("sqlite:////"):
        folder = Path(uri[len("sqlite:///") :].partition("?")[0]).parent
        return folder if folder.is_dir() else None
    return None


def _log_tail(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - _LOG_TAIL_CHARS))
            return fh.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(log unreadable: {exc})"


def _is_link_safe(url: str) -> bool:
    if url.startswith("/") and not url.startswith("//"):
        return True
    return urlsplit(url).scheme in ("http", "https")
