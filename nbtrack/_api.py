"""The public functions besides ``log``: params, artifacts, the active run, waiting for the store.

Each works on the run of the tracked cell being executed and raises ``NoActiveRunError``
outside one (``wait`` excepted). They queue what they are given in the run's buffer, like
``log``, so everything reaches the journal in call order through one writer, the sender.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from nbtrack import _registry
from nbtrack._redact import stored_value, strip_uri_credentials
from nbtrack._registry import TrackedRun
from nbtrack._threads import ended_runs
from nbtrack.errors import NoActiveRunError

__all__ = ["RunInfo", "active_run", "log_artifact", "log_params", "wait"]

# How long ``RunInfo.run_id`` waits for the sync process to create the run in the store: the
# first run of a kernel waits for MLflow's import and, in a new folder, the store's creation.
_RUN_ID_WAIT_S = 60.0


def _tracked(what: str) -> TrackedRun | None:
    """The run the caller logs into; None for a thread of a run that has ended, whose call is
    dropped with one warning (see nbtrack._threads)."""
    if ended_runs.refuse(f"nbtrack.{what}"):
        return None
    tracked = _registry.current()
    if tracked is None:
        raise NoActiveRunError(what)
    return tracked


def log_params(params: Mapping[str, Any] | None = None, /, **more: Any) -> None:
    """Record params of the current tracked cell, in addition to the captured ones:
    ``nbtrack.log_params(batch_size=64)`` or ``nbtrack.log_params({"model/depth": 4})``.

    Values become text as MLflow stores them (an over-long value is cut at MLflow's 6000
    characters, with a visible marker); credentials in them are redacted, at any depth of a
    dict, list or tuple, and a param under a credential's name (``hf_token``) reads
    ``<redacted>``.

    Raises:
        NoActiveRunError: outside a ``%%track`` cell.
        ValueError: a name MLflow would reject, or a param that already has another value in
            this run (MLflow params cannot change).
    """
    tracked = _tracked("log_params")
    if tracked is None:
        return
    given = {**(params or {}), **more}
    new = tracked.run.add_params({key: stored_value(v, key=key) for key, v in given.items()})
    if new:
        tracked.buffer.pending.append(("params", new))


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    """Store a file or a folder with the current run, under ``artifact_path`` if given.

    The copy is taken now, so a checkpoint overwritten later in the cell is stored as it was
    when logged; the upload happens in the background.

    Raises:
        NoActiveRunError: outside a ``%%track`` cell.
        FileNotFoundError: ``path`` does not exist.
    """
    tracked = _tracked("log_artifact")
    if tracked is None:
        return
    source = Path(path)
    if not source.exists():
        msg = f"cannot log artifact {str(source)!r}: no such file or folder"
        raise FileNotFoundError(msg)
    staged = tracked.journal.stage(source)
    tracked.buffer.pending.append(("artifact", (staged, artifact_path)))


class RunInfo:
    """A read-only view of the tracked run: what ``nbtrack.active_run()`` returns.

    ``run_id`` waits (up to 60 s) for the sync process to create the run in the store the
    first time it is read (a few seconds for a kernel's first run), and is None while the store
    is unreachable. ``experiment_id`` is None until then too, unless the experiment was chosen
    by id (``MLFLOW_EXPERIMENT_ID``); then ``experiment_name`` is "" until the store is reached.
    """

    __slots__ = ("_tracked",)

    def __init__(self, tracked: TrackedRun) -> None:
        self._tracked = tracked

    @property
    def run_id(self) -> str | None:
        run = self._tracked.run
        if run.run_id is not None or run.ended:
            return run.run_id
        # The sender brings the run's identity into the run within half a second; asking
        # before that reads it from the sync process directly.
        run_id: str | None = self._tracked.journal.wait_for_run_id(_RUN_ID_WAIT_S)
        return run_id

    @property
    def run_name(self) -> str:
        return self._tracked.run.run_name

    @property
    def experiment_name(self) -> str:
        return self._tracked.run.experiment_name

    @property
    def experiment_id(self) -> str | None:
        return self._tracked.run.experiment_id

    @property
    def tracking_uri(self) -> str:
        """The store's address, without credentials."""
        return strip_uri_credentials(self._tracked.run.tracking_uri)

    @property
    def ui_url(self) -> str | None:
        return self._tracked.run.ui_url

    @property
    def params(self) -> Mapping[str, str]:
        return MappingProxyType(dict(self._tracked.run.params))

    @property
    def status(self) -> str:
        """RUNNING inside the cell; FINISHED, FAILED or KILLED once it ended."""
        return self._tracked.run.status.value

    def __repr__(self) -> str:
        run = self._tracked.run
        return (
            f"RunInfo(run_name={run.run_name!r}, experiment_name={run.experiment_name!r}, "
            f"run_id={run.run_id!r}, status={run.status.value!r})"
        )


def active_run() -> RunInfo | None:
    """The run of the tracked cell being executed, read-only, or None outside one."""
    tracked = _registry.current()
    return None if tracked is None else RunInfo(tracked)


def wait(timeout: float | None = None) -> bool:
    """Block until every run of this kernel is stored in MLflow.

    Cells do not wait for the upload; call this before reading runs back with MLflow's client.
    Inside a tracked cell it waits for what the running run logged so far. Returns False if
    ``timeout`` (seconds) ran out first, or at once when what is left waits for the user: the
    server refuses the credentials or a run (the notebook was told why). Interrupting stops the
    wait, not the upload.
    """
    from nbtrack._sender import drain
    from nbtrack.journal.session import wait_all

    upto: dict[Path, int] = {}
    tracked = _registry.current()
    if tracked is not None:
        drain(tracked)  # what the loop buffered goes to the journal before we measure it
        journal = tracked.journal
        upto[journal.path] = journal.progress().size
    return wait_all(timeout, upto)
