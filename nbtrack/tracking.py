"""The tracking store: which one, its experiments and runs, and MLflow's active run.

- ``resolve_uri``: the one place that decides which store a kernel, the sync process, the
  server extension and ``nbtrack ui`` use. It follows MLflow's own rules (checked against
  ``mlflow.get_tracking_uri()`` by the tests) without importing MLflow, which takes over a
  second, unless the user imported it already.
- ``make_client``, ``run_experiment``, ``create_run``: what the sync process does to a store,
  including the first creation of a local SQLite store, serialised across processes.
- ``attach`` / ``release``: making a tracked run MLflow's active run in the kernel, so that
  ``mlflow.*`` calls in the cell land in it; only when MLflow is (or gets) imported there.
- ``chosen_experiment``: the experiment the user chose the MLflow way (``mlflow.set_experiment``,
  ``MLFLOW_EXPERIMENT_NAME``, ``MLFLOW_EXPERIMENT_ID``), for a cell that names none.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, cast
from urllib.parse import unquote

from nbtrack._settings import state_root

__all__ = [
    "ExperimentDeletedError",
    "active_experiments",
    "attach",
    "chosen_experiment",
    "create_run",
    "experiment_id",
    "import_mlflow",
    "make_client",
    "release",
    "resolve_uri",
    "run_experiment",
    "run_info",
]

# Experiments nbtrack creates open in MLflow's model-training view (MLflow 3 opens experiments
# without this tag in its GenAI view).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def resolve_uri(uri: str | None = None, folder: Path | None = None) -> str:
    """The tracking store's URI, absolute, as MLflow would pick it in ``folder`` (default:
    the working folder).

    ``uri`` when given; else what MLflow was told in this process (``mlflow.set_tracking_uri``,
    only if MLflow is imported); else ``$MLFLOW_TRACKING_URI``; else MLflow's default:
    ``./mlruns`` if it holds experiments from older MLflow versions, otherwise SQLite
    ``./mlflow.db``. Relative paths are made absolute, so that the sync process and a later
    ``mlflow ui`` find the same store.
    """
    folder = (folder or Path.cwd()).absolute()
    if not uri:
        mlflow = _imported_mlflow()
        if mlflow is not None and folder == Path.cwd().absolute():
            uri = str(mlflow.get_tracking_uri())
        else:
            uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if not uri:
        mlruns = folder / "mlruns"
        return mlruns.as_uri() if _has_experiments(mlruns) else _sqlite_uri(folder / "mlflow.db")
    return _absolute(uri, folder)


# MLflow's modules cannot be imported by two threads at once: the second finds them half made
# (an AttributeError or ImportError "most likely due to a circular import", a deadlock in its
# protobuf modules), and the process may stay unable to use MLflow. The server extension reads
# stores in threads while its event loop resolves stores, so nbtrack imports MLflow under this
# lock (``import_mlflow``) and reads MLflow's state only while no thread of it is importing.
_mlflow_import_lock = threading.RLock()


def import_mlflow() -> ModuleType:
    """``mlflow``, its client included, imported once under the lock: call before any other
    import of MLflow in a thread that may not be the only one to import it."""
    with _mlflow_import_lock:
        import mlflow
        import mlflow.tracking  # the client and its stores, imported with it
    return mlflow


def _imported_mlflow() -> ModuleType | None:
    """``mlflow`` if it was imported, None while a thread is still importing it: nbtrack's,
    under the lock, or the user's own ``import mlflow`` in a cell, which takes no lock of
    nbtrack's while its half-made module sits in ``sys.modules`` (importlib's own mark says so,
    the one behind Python's "partially initialized module" errors)."""
    mlflow = sys.modules.get("mlflow")
    if mlflow is None or getattr(mlflow.__spec__, "_initializing", False):
        return None
    if not _mlflow_import_lock.acquire(blocking=False):
        return None
    _mlflow_import_lock.release()
    return mlflow


def _has_experiments(mlruns: Path) -> bool:
    # MLflow's rule: a folder of experiments (numbered folders with a meta.yaml) keeps the old
    # file store as the default.
    with contextlib.suppress(OSError), os.scandir(mlruns) as entries:
        return any(
            entry.is_dir()
            and entry.name.isdigit()
            and os.path.lexists(Path(entry.path, "meta.yaml"))
            for entry in entries
        )
    return False


def _sqlite_uri(path: Path) -> str:
    return f"sqlite:///{path}"


def _absolute(uri: str, folder: Path) -> str:
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path, _, query = uri[len("sqlite:///") :].partition("?")
        if path and path != ":memory:":
            absolute = _sqlite_uri((folder / unquote(path)).resolve())
            return f"{absolute}?{query}" if query else absolute
        return uri
    if uri.startswith("file:") and not uri.startswith("file:/"):
        return (folder / unquote(uri[len("file:") :])).resolve().as_uri()
    if "://" not in uri and ":" not in uri.split("/", 1)[0] and not uri.startswith("databricks"):
        return (folder / uri).resolve().as_uri()
    return uri


def is_local(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:"))


# ------------------------------------------------------------------ the store, from the sync side


class ExperimentDeletedError(ValueError):
    """The run's experiment is deleted in the store: nothing can be logged into it."""


# Creating and migrating a new SQLite store takes seconds, tens on a busy machine. A holder
# past this wait hangs: the sync process gives up for now and retries later, with backoff, as
# for any error of the store, telling the kernel why.
_STORE_LOCK_WAIT_S = 120.0


@contextlib.contextmanager
def _store_creation_lock(uri: str) -> Iterator[None]:
    """Held while a process opens a local SQLite store: several kernels opening a new
    ``mlflow.db`` at the same moment race in its schema migration and can leave it
    half-migrated. The lock file lives in nbtrack's cache, not beside the user's database.
    Raises ``TimeoutError`` if another holds it for ``_STORE_LOCK_WAIT_S``, and
    ``PrivateFolderError`` if another user could change its folder."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    from nbtrack import _platform
    from nbtrack._files import open_private, private_folder

    folder = private_folder(state_root() / "locks", "its locks", "NBTRACK_STATE_DIR")
    path = folder / f"store-{hashlib.sha256(uri.encode()).hexdigest()[:20]}.lock"
    with open_private(path) as handle:
        if not _platform.try_lock(handle, wait=_STORE_LOCK_WAIT_S):
            msg = (
                f"another process has held nbtrack's lock for creating this SQLite store "
                f"({path}) for {_STORE_LOCK_WAIT_S:.0f} s; retrying later. If no kernel is "
                f"starting on this store, stop the process holding it (`fuser {path}` names it)"
            )
            raise TimeoutError(msg)
        try:
            yield
        finally:
            _platform.unlock(handle)


def make_client(uri: str) -> Any:
    """An ``MlflowClient`` for ``uri`` whose store is ready (created and migrated if new)."""
    from mlflow import MlflowClient

    with _store_creation_lock(uri):
        client = MlflowClient(tracking_uri=uri)
        if is_local(uri):
            # Opening a SQLite store creates and migrates it; do that under the lock.
            client.search_experiments(max_results=1)
    return client


def run_experiment(
    client: Any, name: str, chosen_id: str | None, known: dict[str, str]
) -> tuple[str, str]:
    """Where a new run goes, as (id, name): experiment ``chosen_id``, where one was chosen by id
    and the store has it (the kernel tells the user otherwise), else experiment ``name``,
    created if missing. ``known``: name -> id, shared by the runs of one store."""
    if chosen_id is not None:
        found = _experiment_name(client, chosen_id)
        if found is not None:
            return chosen_id, found
    if name not in known:
        known[name] = experiment_id(client, name)
    return known[name], name


def _experiment_name(client: Any, experiment: str) -> str | None:
    """The name of the experiment with id ``experiment``; None where the store has none (or
    the id is not one it could have). Raises ``ExperimentDeletedError`` for a deleted one."""
    try:
        found = client.get_experiment(experiment)
    except Exception as error:
        if getattr(error, "error_code", None) in (
            "RESOURCE_DOES_NOT_EXIST",
            "INVALID_PARAMETER_VALUE",
        ):
            return None
        raise
    if found.lifecycle_stage == "deleted":
        msg = (
            f"experiment {found.name!r} (id {experiment}) is deleted in this store; restore it "
            "in the MLflow UI (or `mlflow experiments restore`), then run `nbtrack sync` to "
            "upload this run"
        )
        raise ExperimentDeletedError(msg)
    return str(found.name)


def experiment_id(client: Any, name: str) -> str:
    """The id of experiment ``name``, created if missing (in MLflow's training view).

    Two processes may create it at the same moment: the loser reads the winner's id. Raises
    ``ExperimentDeletedError`` for a deleted experiment, with the way out.
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return str(client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}))
        except Exception as error:
            if getattr(error, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                raise
        experiment = client.get_experiment_by_name(name)
        if experiment is None:  # created and deleted again in between: try again later
            msg = f"experiment {name!r} vanished while it was being created"
            raise RuntimeError(msg)
    if experiment.lifecycle_stage == "deleted":
        msg = (
            f"experiment {name!r} is deleted in this store; restore it in the MLflow UI (or "
            "`mlflow experiments restore`), or track into another one with "
            "`%%track --experiment NAME`; then run `nbtrack sync` to upload this run"
        )
        raise ExperimentDeletedError(msg)
    return str(experiment.experiment_id)


def active_experiments(client: Any) -> dict[str, str]:
    """Every active experiment of ``client``'s store, id -> name, page by page."""
    from mlflow.entities import ViewType

    names: dict[str, str] = {}
    token = None
    while True:
        page = client.search_experiments(view_type=ViewType.ACTIVE_ONLY, page_token=token)
        names.update((e.experiment_id, e.name) for e in page)
        token = page.token
        if not token:
            return names


def create_run(
    client: Any, experiment: str, *, run_name: str | None, start_time: int, tags: dict[str, str]
) -> dict[str, Any]:
    """Create a run; return its ``run_info``."""
    run = client.create_run(experiment, start_time=start_time, tags=tags, run_name=run_name)
    return run_info(run)


def run_info(run: Any) -> dict[str, Any]:
    """MLflow's ``run`` as the store returned it (id, experiment, artifact location, user...,
    and ``tags``), as plain JSON values: the sync process hands it to the kernel, which makes
    the run MLflow's active run from it (``attach``) without asking the store again."""
    return {**dict(run.info), "tags": dict(run.data.tags)}


# ------------------------------------------------------------------ MLflow's active run (kernel)


def attach(info: dict[str, Any]) -> None:
    """Make the run ``info`` describes (``run_info``, as the store created it) MLflow's active
    run in this thread, over any run the user started.

    Built from what the sync process saw rather than asked of the store: a team's server that
    went away since the run was created would hold the cell's ``import mlflow`` for minutes,
    while MLflow's client waits out its HTTP retries. MLflow's own ``mlflow.start_run`` also
    returns the run as created, not as it is later."""
    from mlflow.entities import Run, RunData, RunInfo, RunTag
    from mlflow.tracking import fluent

    data = RunData(tags=[RunTag(key, value) for key, value in info["tags"].items()])
    run = Run(cast("RunInfo", RunInfo.from_dictionary(info)), data)
    # Pushed as it is: mlflow.start_run(run_id=...) would also rewrite the run's status and
    # refuse a run outside the experiment the user set with mlflow.set_experiment().
    fluent._active_run_stack.get().append(fluent.ActiveRun(run))


def chosen_experiment() -> tuple[str | None, str | None]:
    """The experiment the user chose the MLflow way, in MLflow's own order: the one
    ``mlflow.set_experiment()`` set in this kernel, else ``MLFLOW_EXPERIMENT_NAME``, else
    ``MLFLOW_EXPERIMENT_ID``; as ``(name, None)`` or ``(None, id)``, ``(None, None)`` where
    none was chosen.

    An id is not looked up here: that needs the store (and MLflow's import), which may be away
    for minutes. The run carries the id; the sync process looks it up (``experiment_name``).
    """
    fluent = sys.modules.get("mlflow.tracking.fluent")
    chosen = getattr(fluent, "_active_experiment_id", None)
    if chosen is not None:
        return None, str(chosen)
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if name:
        return name, None
    return None, os.environ.get("MLFLOW_EXPERIMENT_ID") or None


def active_mlflow_run_id() -> str | None:
    """The run the user started with ``mlflow.start_run()`` and left open, if any."""
    mlflow = _imported_mlflow()
    if mlflow is None:
        return None
    run = mlflow.active_run()
    return None if run is None else str(run.info.run_id)


def release(run_id: str) -> None:
    """Stop being MLflow's active run without ending it: the sync process ends it once all its
    data is stored, with the cell's real status."""
    if "mlflow" not in sys.modules:
        return
    from mlflow.tracking import fluent

    stack = fluent._active_run_stack.get()
    if stack and stack[-1].info.run_id == run_id:
        stack.pop()
        fluent._last_active_run_id.set(run_id)
    if os.environ.get("MLFLOW_RUN_ID") == run_id:
        del os.environ["MLFLOW_RUN_ID"]
