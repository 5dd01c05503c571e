"""The runs of one notebook, read from a tracking store and shaped as run records.

Blocking code: the handlers call it in a thread, never on the server's event loop. MLflow is
imported on the first call, not when the Jupyter server loads the extension.
"""

from __future__ import annotations

import math
import os
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from nbtrack._redact import is_secret_name, redact_text, strip_uri_credentials
from nbtrack._version import VERSION
from nbtrack.record.metrics import panels_for
from nbtrack.record.schema import SCHEMA_VERSION, STATUSES
from nbtrack.tracking import active_experiments, resolve_uri

if TYPE_CHECKING:
    from nbtrack.ui.process import UiServer

_SOURCE_TAG = "mlflow.source.name"
_CONNECT_TIMEOUT_S = 3.0
_DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "mysql": 3306, "mssql": 1433}
# MLflow's REST API accepts at most this many experiment ids per search.
_EXPERIMENTS_PER_SEARCH = 100


class StoreError(Exception):
    """The tracking store could not be read. The message says why in words fit for any user of
    the page: no credentials, no SQL, no absolute paths; ``__cause__`` has the details."""


_SQL_DETAIL = re.compile(r"\s*(\[SQL:.*|\(Background on this error.*)", re.DOTALL)
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.])/(?:[^\s/'\"()\[\]]+/)*[^\s/'\"()\[\]]*")
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"()<>]+")


def describe_error(error: BaseException) -> str:
    """One short line about ``error`` that is safe to show: its kind and its first line, with
    SQL statements, URLs (they may hold credentials) and absolute paths left out."""
    text = str(getattr(error, "orig", None) or error).strip()
    text = _SQL_DETAIL.sub("", text).splitlines()[0] if text else ""
    text = _URL.sub(lambda m: _public_address(m.group(0)), text)
    text = _ABSOLUTE_PATH.sub("<path>", redact_text(text))[:300]
    kind = type(error).__name__
    return f"{kind}: {text}" if text else kind


def _public_address(url: str) -> str:
    """A URL as the page may show it: scheme, host and port only."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if _port(parts) else ''}"


def _port(parts: Any) -> int | None:
    try:
        return int(parts.port) if parts.port else None
    except ValueError:
        return None


def public_store(uri: str, root: Path) -> str:
    """How a reason names a store: a SQLite file by its path under the server's root (else
    its file name), any other store by scheme, host and port."""
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :].partition("?")[0])
        try:
            return path.resolve().relative_to(root).as_posix()
        except ValueError:
            return path.name
    return _public_address(uri) if "://" in uri else strip_uri_credentials(uri)


def notebook_store(folder: Path, configured: str | None) -> str:
    """The store a notebook in ``folder`` logs to: the configured URI, the server's
    ``$MLFLOW_TRACKING_URI``, else MLflow's default for a kernel started in that folder."""
    return resolve_uri(configured or os.environ.get("MLFLOW_TRACKING_URI", "").strip(), folder)


def store_is_empty(uri: str) -> bool:
    """True for a SQLite store whose file does not exist: nothing was logged there, and opening
    it would create a database in the user's folder just because a page asked."""
    if not uri.startswith("sqlite:///"):
        return False
    path = uri[len("sqlite:///") :].partition("?")[0]
    return path not in ("", ":memory:") and not Path(path).exists()


def check_reachable(uri: str) -> None:
    """Raise :class:`StoreError` at once when a network store does not accept connections.

    MLflow's client would retry a dead server for minutes; a TCP connect answers in seconds.
    """
    parts = urlsplit(uri)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError as exc:
        msg = f"the tracking URI's port is not a number ({_public_address(uri)})"
        raise StoreError(msg) from exc
    try:
        with socket.create_connection((parts.hostname, port), timeout=_CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        msg = (
            f"tracking store {_public_address(uri)} is unreachable "
            f"({exc.strerror or type(exc).__name__}); start it or set "
            "NbtrackServer.tracking_uri / MLFLOW_TRACKING_URI to a store that runs"
        )
        raise StoreError(msg) from exc


def list_runs(
    uri: str,
    source_names: list[str],
    *,
    notebook_path: str,
    max_runs: int,
    ui: UiServer | None,
) -> list[dict[str, Any]]:
    """Runs in any experiment of ``uri`` whose ``mlflow.source.name`` is one of
    ``source_names``, newest first, as records (the record schema, without curves).

    Raises :class:`StoreError` when the store cannot be read.
    """
    from mlflow.exceptions import MlflowException  # lazy: mlflow is slow to import
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return _list_runs(uri, source_names, notebook_path, max_runs, ui)
    # OSError covers requests' errors (REST stores); SQLAlchemyError a broken database file.
    except (MlflowException, SQLAlchemyError, OSError) as exc:
        raise StoreError(f"could not be read ({describe_error(exc)})") from exc


def _list_runs(
    uri: str,
    source_names: list[str],
    notebook_path: str,
    max_runs: int,
    ui: UiServer | None,
) -> list[dict[str, Any]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiments = active_experiments(client)
    ids = list(experiments)
    found: dict[str, Any] = {}
    # MLflow's filter language has no OR: one search per spelling of the notebook's path.
    for name in dict.fromkeys(source_names):
        literal = _quoted(name)
        if literal is None:
            continue
        for first in range(0, len(ids), _EXPERIMENTS_PER_SEARCH):
            runs = client.search_runs(
                ids[first : first + _EXPERIMENTS_PER_SEARCH],
                filter_string=f"tags.`{_SOURCE_TAG}` = {literal}",
                max_results=max_runs,
                order_by=["attributes.start_time DESC"],
            )
            found.update((run.info.run_id, run) for run in runs)
    newest = sorted(found.values(), key=lambda run: run.info.start_time or 0, reverse=True)
    public_uri = strip_uri_credentials(uri)
    return [
        _record(
            client,
            run,
            experiment_name=experiments.get(run.info.experiment_id),
            public_uri=public_uri,
            ui=ui,
            notebook_path=notebook_path,
        )
        for run in newest[:max_runs]
    ]


def _quoted(value: str) -> str | None:
    """A string literal for MLflow's filter language, or None when the value holds both quote
    characters (the language has no escapes)."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    return None


def _record(
    client: Any,
    run: Any,
    *,
    experiment_name: str | None,
    public_uri: str,
    ui: UiServer | None,
    notebook_path: str,
) -> dict[str, Any]:
    info, data = run.info, run.data
    tags: dict[str, str] = data.tags
    start, end = info.start_time, info.end_time
    metrics = {
        key: _metric(key, client.get_metric_history(info.run_id, key)) for key in data.metrics
    }
    return {
        "schema": SCHEMA_VERSION,
        "nbtrack_version": VERSION,
        "run": {
            "id": info.run_id,
            "name": info.run_name or tags.get("mlflow.runName"),
            "experiment_id": info.experiment_id,
            "experiment_name": experiment_name,
            "status": info.status if info.status in STATUSES else "RUNNING",
            "start_time": start,
            "end_time": end,
            "duration_s": (end - start) / 1000.0 if start and end else None,
        },
        "tracking_uri": public_uri,
        "ui_url": ui.run_url(info.experiment_id, info.run_id) if ui else None,
        "notebook": {"path": notebook_path, "cell_id": tags.get("nbtrack.cell_id")},
        # Code outside nbtrack may have logged a credential as a param: never serve it.
        "params": {
            str(key): redact_text(str(value))
            for key, value in data.params.items()
            if not is_secret_name(key)
        },
        "metrics": metrics,
        # Grouped by the function the kernel's records use, so a run looks the same here.
        "panels": panels_for(metrics),
        "error": _error(tags.get("nbtrack.error")),
        "sync": {"state": "synced", "pending_points": 0},
    }


def _metric(key: str, history: list[Any]) -> dict[str, Any]:
    """A record's metric entry from the metric's full history in the store. The curve itself is
    left empty: a listing of many runs should stay small; the notebook's record has it."""
    from nbtrack.record import metric_goal  # lazy: it pulls in numpy

    points = sorted(history, key=lambda m: (m.step, m.timestamp))
    finite = [m for m in points if math.isfinite(m.value)]
    goal = metric_goal(key)
    low = min(finite, key=lambda m: m.value) if finite else None
    high = max(finite, key=lambda m: m.value) if finite else None
    best = low if goal == "min" else high if goal == "max" else None
    last = points[-1] if points else None
    return {
        "last": _number(last.value) if last else None,
        "last_step": last.step if last else None,
        "min": low.value if low else None,
        "max": high.value if high else None,
        "goal": goal,
        "best": best.value if best else None,
        "best_step": best.step if best else None,
        "count": len(points),
        "nonfinite": len(points) - len(finite),
        "curve": {"steps": [], "values": []},
    }


def _number(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return float(value)


def _error(tag: str | None) -> dict[str, Any] | None:
    """The kernel stores a failed cell's exception as ``nbtrack.error`` = ``"Type: message"``."""
    if not tag:
        return None
    kind, sep, message = redact_text(tag).partition(": ")
    if not sep:
        return {"type": None, "message": tag, "step": None}
    return {"type": kind, "message": message, "step": None}
