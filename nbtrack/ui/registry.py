"""Which MLflow UI runs for which store: one small private file per store, and a lock.

Entries hold the store's URI without its credentials and a hash of the full URI (files are
named by it too), in a private folder. An entry is read only when it is exactly what
``write_entry`` writes; even then it is a claim, which ``process`` checks against the running
process and its port before it shows, reuses or stops anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard
from urllib.parse import quote

from nbtrack import _platform
from nbtrack._files import PrivateFolderError, open_private, private_folder, write_json_atomic
from nbtrack._redact import strip_uri_credentials
from nbtrack._settings import state_root
from nbtrack.errors import UiStartError

__all__ = [
    "UiServer",
    "entry_path",
    "key",
    "local_url",
    "locked",
    "log_tail",
    "read_entry",
    "server_ui",
    "state_dir",
    "write_entry",
]

_LOG_TAIL_CHARS = 3000
# How long a caller waits for the lock of a store's UI: longer than another caller starting that
# UI takes (``process.DEFAULT_START_TIMEOUT_S``, 120 s), not forever if that caller hangs.
LOCK_WAIT_S = 180.0


# MLflow 3's UI opens every experiment in its GenAI view ("Traces 0, Token usage") unless its
# address says `workflowType=machine_learning`, which it keeps while one navigates; the
# experiment's mlflow.experimentKind tag (set by nbtrack.tracking) decides only where the UI's
# view switch is turned off. So nbtrack's links to the UI carry it.
TRAINING_VIEW = "workflowType=machine_learning"


@dataclass(frozen=True)
class UiServer:
    """A running MLflow UI.

    ``url`` is the UI's root (``http://127.0.0.1:<port>/``); ``tracking_uri`` is its store
    without credentials, ``store_key`` a hash of that (``key``: what finds the UI again).
    """

    tracking_uri: str
    url: str
    pid: int
    port: int
    log_path: str
    store_key: str = ""

    def run_url(self, experiment_id: str, run_id: str) -> str:
        """Address of one run's page in this UI, in its model-training view."""
        experiment, run = quote(experiment_id, safe=""), quote(run_id, safe="")
        return f"{self.url}#/experiments/{experiment}/runs/{run}?{TRAINING_VIEW}"


def server_ui(uri: str) -> UiServer | None:
    """The UI of an MLflow tracking server (an http(s) store), which serves it itself at its
    root: nbtrack starts none and records none (pid and port 0). None for any other store."""
    if not uri.lower().startswith(("http://", "https://")):
        return None
    public = strip_uri_credentials(uri)
    root = public.split("?", 1)[0].split("#", 1)[0].rstrip("/") + "/"
    return UiServer(tracking_uri=public, url=root, pid=0, port=0, log_path="")


def local_url(port: int) -> str:
    """The address of a UI nbtrack starts: its root on 127.0.0.1, and nothing else."""
    return f"http://127.0.0.1:{port}/"


def state_dir() -> Path:
    """``$NBTRACK_STATE_DIR/ui`` (default ``~/.cache/nbtrack/ui``), private. Raises
    ``UiStartError`` (saying why and what to set) where another user could change it."""
    try:
        folder = state_root() / "ui"  # (no home folder: PrivateFolderError)
        return private_folder(folder, "the addresses of its MLflow UIs", "NBTRACK_STATE_DIR")
    except PrivateFolderError as error:
        raise UiStartError(str(error)) from error
    except OSError as error:  # a file where the folder should be, a read-only disk
        msg = (
            f"cannot keep the addresses of its MLflow UIs in {state_root() / 'ui'} "
            f"({error.strerror or error}); set NBTRACK_STATE_DIR to a folder of yours"
        )
        raise UiStartError(msg) from error


def key(uri: str) -> str:
    """What names a store's UI in the registry: a hash of its URI without credentials (a hash
    of a password is one to guess offline, and a changed password is still the same store)."""
    return hashlib.sha256(strip_uri_credentials(uri).encode("utf-8")).hexdigest()[:20]


def entry_path(uri: str) -> Path:
    return state_dir() / f"{key(uri)}.json"


def read_entry(entry: Path) -> UiServer | None:
    """The UI an entry describes, or None. An entry that is unreadable, from another version,
    or not what ``write_entry`` writes (another address, a pid no UI can have) is deleted."""
    try:
        data = json.loads(entry.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        data = None
    ui = _entry_ui(data)
    if ui is None:
        # Forget it rather than fail the caller.
        entry.unlink(missing_ok=True)
    return ui


def _entry_ui(data: object) -> UiServer | None:
    if not isinstance(data, dict):
        return None
    uri, url, log_path = data.get("tracking_uri"), data.get("url"), data.get("log_path")
    pid, port = data.get("pid"), data.get("port")
    if not (isinstance(uri, str) and isinstance(url, str) and isinstance(log_path, str)):
        return None
    # Entries written before the key was kept hold the full URI itself.
    store_key = data.get("store_key") or key(uri)
    if not (isinstance(store_key, str) and _is_int(pid) and _is_int(port)):
        return None
    # Signalling pid 0, 1 or below reaches this process's own group, init or every process.
    if pid <= 1 or not 0 < port < 65536 or url != local_url(port):
        return None
    return UiServer(
        tracking_uri=strip_uri_credentials(uri),
        url=url,
        pid=pid,
        port=port,
        log_path=log_path,
        store_key=store_key,
    )


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def write_entry(entry: Path, ui: UiServer) -> None:
    content: dict[str, Any] = {
        "tracking_uri": strip_uri_credentials(ui.tracking_uri),
        "store_key": ui.store_key,
        "url": ui.url,
        "pid": ui.pid,
        "port": ui.port,
        "log_path": ui.log_path,
        "started": time.time(),
    }
    write_json_atomic(entry, content)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """One process at a time per store: two kernels asking at once must share one UI. Raises
    ``UiStartError`` if another holds the lock for ``LOCK_WAIT_S``."""
    with open_private(path) as handle:
        if not _platform.try_lock(handle, wait=LOCK_WAIT_S):
            msg = (
                f"another process has held {path} for {LOCK_WAIT_S:.0f} s (a kernel, `nbtrack "
                "ui` or a Jupyter server starting an MLflow UI for this store, or one that "
                f"hangs); try again, or stop that process (`fuser {path}` names it)"
            )
            raise UiStartError(msg)
        try:
            yield
        finally:
            _platform.unlock(handle)


def log_tail(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - _LOG_TAIL_CHARS))
            return fh.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(log unreadable: {exc})"
