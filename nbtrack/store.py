"""The kernel's side of the tracking store: which store, is it up, and MLflow's active run.

Creating the run is the one MLflow call the kernel makes itself, because code in the cell
(``mlflow.log_metric``, ``mlflow.autolog()``) must find it as MLflow's active run. Everything
logged afterwards goes through the spool and the sync process.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from nbtrack.run import Run

_PROBE_TIMEOUT_S = 3.0


def tracking_uri() -> str:
    """The store MLflow would use now: ``MLFLOW_TRACKING_URI``, ``mlflow.set_tracking_uri``,
    else MLflow's default (``sqlite:///mlflow.db`` in the working folder), made absolute so
    that the sync process and a later ``mlflow ui`` find the same file."""
    import mlflow

    uri: str = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(Path(uri[len("sqlite:///") :]).resolve())
    elif "://" not in uri and not uri.startswith("databricks"):
        uri = Path(uri).resolve().as_uri()
    return uri


def reachable(uri: str) -> str | None:
    """None if the store answers, else why not (HTTP stores are probed at ``/health``)."""
    if not uri.startswith(("http://", "https://")):
        return None
    from nbtrack.secrets import strip_uri_credentials

    # /health needs no login; credentials in the URI would only confuse urllib.
    probe = strip_uri_credentials(uri).split("?", 1)[0].rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(probe, timeout=_PROBE_TIMEOUT_S):  # noqa: S310 - http(s) only, checked above
            return None
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            return None  # up, behind auth: the client has the credentials
        return f"HTTP {error.code}"
    except (OSError, ValueError) as error:
        return str(getattr(error, "reason", error))


def run_ui_url(uri: str, experiment_id: str | None, run_id: str | None) -> str | None:
    """Link to the run in the MLflow UI: the server's own for an MLflow server, else one that
    ``%track_ui``/``nbtrack ui`` started for this store (no link if none runs)."""
    if not (experiment_id and run_id):
        return None
    if not uri.startswith(("http://", "https://")):
        from nbtrack.mlflow_ui import find_ui

        ui = find_ui(uri)
        return None if ui is None else ui.run_url(experiment_id, run_id)
    from nbtrack.secrets import strip_uri_credentials

    base = strip_uri_credentials(uri).rstrip("/")
    return f"{base}/#/experiments/{quote(experiment_id)}/runs/{quote(run_id)}"


_experiments: dict[tuple[str, str], str] = {}
_experiments_lock = threading.Lock()


def experiment_id(client: Any, uri: str, name: str) -> str:
    with _experiments_lock:
        cached = _experiments.get((uri, name))
        if cached is not None:
            return cached
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            try:
                found = str(client.create_experiment(name))
            except Exception as error:
                # Another kernel created it in between.
                if getattr(error, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                    raise
                found = str(client.get_experiment_by_name(name).experiment_id)
        elif experiment.lifecycle_stage == "deleted":
            msg = (
                f"experiment {name!r} is deleted in {uri}; restore it in the MLflow UI "
                "(or `mlflow experiments restore`), or track into another one with "
                "`%%track --experiment NAME`"
            )
            raise ValueError(msg)
        else:
            found = str(experiment.experiment_id)
        _experiments[(uri, name)] = found
        return found


def start(run: Run) -> None:
    """Create the run in the store and make it MLflow's active run for the cell."""
    import mlflow

    client = mlflow.MlflowClient(run.tracking_uri)
    run.experiment_id = experiment_id(client, run.tracking_uri, run.experiment_name)
    outer = mlflow.active_run()
    tags = dict(run.tags)
    if outer is not None:
        # A run the user started by hand stays open: ours nests under it instead of
        # failing with MLflow's "Run ... is already active".
        tags["mlflow.parentRunId"] = outer.info.run_id
        run.tags["mlflow.parentRunId"] = outer.info.run_id
    active = mlflow.start_run(
        experiment_id=run.experiment_id,
        run_name=run.run_name,
        tags=tags,
        nested=outer is not None,
    )
    run.run_id = active.info.run_id
    run.start_time_ms = active.info.start_time
    run.ui_url = run_ui_url(run.tracking_uri, run.experiment_id, run.run_id)


def release(run: Run) -> None:
    """Stop being MLflow's active run without ending it: the sync process ends it once all
    its data is stored, with the cell's real status."""
    if run.run_id is None:
        return
    from mlflow.tracking import fluent

    stack = fluent._active_run_stack.get()
    if stack and stack[-1].info.run_id == run.run_id:
        stack.pop()
        fluent._last_active_run_id.set(run.run_id)
        if os.environ.get("MLFLOW_RUN_ID") == run.run_id:
            del os.environ["MLFLOW_RUN_ID"]


def warm_up() -> None:
    """Import MLflow and open the default store once, so the first tracked cell is quick."""
    import logging

    import mlflow

    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        return
    # Creating a new SQLite store announces its migrations at INFO level; from a background
    # thread those lines would land in whatever cell the user runs next.
    quiet = [logging.getLogger(name) for name in ("mlflow.store.db.utils", "alembic")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.WARNING)
    try:
        mlflow.MlflowClient(uri).search_experiments(max_results=1)
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
