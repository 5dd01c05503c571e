"""Which MLflow UI runs for which store: one small private file per store, and a lock.

Entries hold the store's URI without its credentials and a hash of the full URI (files are
named by it too), in a private folder.
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
from typing import Any

from nbtrack import _platform
from nbtrack._files import make_private_dir, open_private, write_json_atomic
from nbtrack._redact import strip_uri_credentials
from nbtrack._settings import cache_dir, settings

__all__ = [
    "UiServer",
    "entry_path",
    "key",
    "locked",
    "log_tail",
    "read_entry",
    "state_dir",
    "write_entry",
]

_LOG_TAIL_CHARS = 3000


# MLflow 3's UI opens every experiment in its GenAI view ("Traces 0, Token usage") unless its
# address says `workflowType=machine_learning`, which it keeps while one navigates; the
# experiment's mlflow.experimentKind tag (set by nbtrack.tracking) decides only where the UI's
# view switch is turned off. So nbtrack's links to the UI carry it.
TRAINING_VIEW = "workflowType=machine_learning"


@dataclass(frozen=True)
class UiServer:
    """A running MLflow UI.

    ``url`` is the UI's root (``http://127.0.0.1:<port>/``); ``tracking_uri`` is its store
    without credentials, ``store_key`` a hash of the full URI (what finds the UI again).
    """

    tracking_uri: str
    url: str
    pid: int
    port: int
    log_path: str
    store_key: str = ""

    def run_url(self, experiment_id: str, run_id: str) -> str:
        """Address of one run's page in this UI, in its model-training view."""
        return f"{self.url}#/experiments/{experiment_id}/runs/{run_id}?{TRAINING_VIEW}"


def state_dir() -> Path:
    """``$NBTRACK_STATE_DIR/ui`` (default ``~/.cache/nbtrack/ui``), private."""
    return make_private_dir((settings().state_dir or cache_dir()) / "ui")


def key(uri: str) -> str:
    return hashlib.sha256(uri.encode("utf-8")).hexdigest()[:20]


def entry_path(uri: str) -> Path:
    return state_dir() / f"{key(uri)}.json"


def read_entry(entry: Path) -> UiServer | None:
    try:
        data = json.loads(entry.read_text(encoding="utf-8"))
        uri = str(data["tracking_uri"])
        return UiServer(
            tracking_uri=strip_uri_credentials(uri),
            url=str(data["url"]),
            pid=int(data["pid"]),
            port=int(data["port"]),
            log_path=str(data["log_path"]),
            # Entries written before the key was kept hold the full URI itself.
            store_key=str(data.get("store_key") or key(uri)),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        # Unreadable or from another version: forget it rather than fail the caller.
        entry.unlink(missing_ok=True)
        return None


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
    """One process at a time per store: two kernels asking at once must share one UI."""
    with open_private(path) as handle:
        _platform.try_lock(handle, block=True)
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
