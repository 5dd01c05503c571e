"""The runs of one notebook, read from a tracking store and shaped as run records.

Blocking code: the handlers call it in a thread, never on the server's event loop. MLflow is
imported on the first call, not when the Jupyter server loads the extension.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import socket
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from nbtrack._redact import redact_text, strip_uri_credentials
from nbtrack._version import VERSION
from nbtrack.comparison.table import RunRow, rows_from_store
from nbtrack.record.metrics import metric_goal, panels_for
from nbtrack.record.schema import SCHEMA_VERSION, STATUSES
from nbtrack.tracking import active_experiments, import_mlflow, resolve_uri

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
# A folder's name may hold spaces (`My Projects/`): words joined by single spaces, followed by
# a slash. The last part of a path is taken up to the first space, so that the words after a
# path stay; a quoted path is taken whole.
_NAME = r"[^\s/'\"()\[\]<>]+"
_PATH = rf"/+(?:{_NAME}(?: {_NAME})*/+)*(?:{_NAME})?"
_QUOTED_PATH = re.compile(r"(['\"])/.*?\1")
_ABSOLUTE_PATH = re.compile(rf"(?<![\w:/.]){_PATH}")
# What the kernel writes before ": " in nbtrack.error: an exception's (qualified) class name.
_EXCEPTION_TYPE = re.compile(r"[A-Za-z_][\w.]*")
_URL = re.compile(rf"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"()<>/]*(?:{_PATH})?")


def describe_error(error: BaseException) -> str:
    """One short line about ``error`` that is safe to show: its kind and its first line, with
    SQL statements, URLs (they may hold credentials) and absolute paths left out."""
    text = str(getattr(error, "orig", None) or error).strip()
    text = _SQL_DETAIL.sub("", text).splitlines()[0] if text else ""
    text = _URL.sub(lambda m: _public_address(m.group(0)), text)
    text = _QUOTED_PATH.sub(r"\1<path>\1", redact_text(text))
    text = _ABSOLUTE_PATH.sub("<path>", text)[:300]
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
    """True for a SQLite store whose file does not exist, or holds no MLflow tables (an empty
    file, someone's own database): nothing was logged there, and MLflow would create its tables
    in it just because a page asked."""
    if not uri.startswith("sqlite:///"):
        return False
    path = uri[len("sqlite:///") :].partition("?")[0]
    if path in ("", ":memory:"):
        return False
    if not Path(path).exists():
        return True
    try:  # read-only: looking must not write either
        with contextlib.closing(
            sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True)
        ) as db:
            found = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'experiments'"
            ).fetchone()
    except sqlite3.Error:  # not a database, locked, a folder: MLflow's own error says so
        return False
    return found is None


def check_reachable(uri: str) -> None:
    """Raise :class:`StoreError` at once when a network store does not accept connections.

    MLflow's client would retry a dead server for minutes; a TCP connect answers in seconds.
    """
    try:
        parts = urlsplit(uri)
    except ValueError as exc:  # http://[::1
        msg = f"the tracking URI cannot be read ({exc}): set NbtrackServer.tracking_uri or "\
            "MLFLOW_TRACKING_URI to a valid one"  # fmt: skip
        raise StoreError(msg) from exc
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
    ``source_names``, newest first, as records (the record schema, without curves): what one
    search per spelling returns, never a metric's history.

    Raises :class:`StoreError` when the store cannot be read.
    """
    import_mlflow()  # lazy (slow to import), and one thread at a time
    from mlflow.exceptions import MlflowException
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
    newest = newest[:max_runs]
    # The search gave each run's last values and its nbtrack.best tag, which is all a listing
    # shows: the rows nbtrack.runs() makes of them. No history is read (one may hold millions
    # of points; a call per run and metric is what the search saves).
    rows = rows_from_store(newest, experiments, ui.run_url if ui else _no_link)
    public_uri = strip_uri_credentials(uri)
    return [
        _record(run, row, public_uri=public_uri, notebook_path=notebook_path)
        for run, row in zip(newest, rows, strict=True)
    ]


def _no_link(_experiment_id: str, _run_id: str) -> None:
    return None


def _quoted(value: str) -> str | None:
    """A string literal for MLflow's filter language, or None when the value holds both quote
    characters (the language has no escapes)."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    return None


def _record(run: Any, row: RunRow, *, public_uri: str, notebook_path: str) -> dict[str, Any]:
    start, end = row.start_ms, row.end_ms
    steps = _last_steps(run)
    metrics = {
        name: _metric(name, last, row.best.get(name), steps.get(name))
        for name, last in row.last.items()
    }
    return {
        "schema": SCHEMA_VERSION,
        "nbtrack_version": VERSION,
        "run": {
            "id": row.run_id,
            "name": row.name,
            "experiment_id": row.experiment_id,
            "experiment_name": row.experiment,
            "status": row.status if row.status in STATUSES else "RUNNING",
            "start_time": start,
            "end_time": end,
            "duration_s": (end - start) / 1000.0 if start and end else None,
        },
        "tracking_uri": public_uri,
        "ui_url": row.url,
        "notebook": {"path": notebook_path, "cell_id": run.data.tags.get("nbtrack.cell_id")},
        # Credential-named params are left out of the rows; a value may still hold a secret
        # that code outside nbtrack logged.
        "params": {str(key): redact_text(str(value)) for key, value in row.params.items()},
        "metrics": metrics,
        # Grouped by the function the kernel's records use, so a run looks the same here.
        "panels": panels_for(_known_ranges(metrics)),
        "error": _error(run.data.tags.get("nbtrack.error")),
        "sync": {"state": "synced", "pending_points": 0},
    }


def _last_steps(run: Any) -> dict[str, int]:
    """Each metric's last step: MLflow's ``RunData`` has it on its Metric objects only, which
    its protobuf form lists."""
    return {metric.key: int(metric.step) for metric in run.data.to_proto().metrics}


def _metric(name: str, last: float, best: float | None, last_step: int | None) -> dict[str, Any]:
    """A record's metric entry from what the search returns: the last value, and the best one
    from the run's ``nbtrack.best`` tag (none for a run still running or logged by other code).
    What only the history could tell is left unknown (null): the extreme that is not the best,
    how many points there are and how many are not finite. The curve is left empty too: the
    notebook's record has it."""
    goal = metric_goal(name)
    if goal is None or best is None or not math.isfinite(best):
        best = None
    return {
        "last": _number(last),
        "last_step": last_step,
        "min": best if goal == "min" else None,
        "max": best if goal == "max" else None,
        "goal": goal,
        "best": best,
        "best_step": None,
        "count": None,  # unknown without the history
        "nonfinite": None,
        "curve": {"steps": [], "values": []},
    }


def _known_ranges(metrics: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """The span of each metric's known values (last and best), so that ``panels_for`` still
    keeps metrics of very different scales apart without their histories."""
    ranges = {}
    for name, entry in metrics.items():
        values = (entry["last"], entry["best"])
        known = [v for v in values if isinstance(v, float) and math.isfinite(v)]
        ranges[name] = {"min": min(known), "max": max(known)} if known else {}
    return ranges


def _number(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return float(value)


def _error(tag: str | None) -> dict[str, Any] | None:
    """The kernel stores a failed cell's exception as ``nbtrack.error`` = ``"Type: message"``.
    Code outside nbtrack may store any text: then all of it is the message of an ``Error``.
    Either way the text is redacted first, whoever wrote it."""
    if not tag:
        return None
    text = redact_text(tag)
    kind, sep, message = text.partition(": ")
    if not sep or not _EXCEPTION_TYPE.fullmatch(kind):
        kind, message = "Error", text
    return {"type": kind, "message": message, "step": None}
