"""The run a tracked cell starts, as data: its name and experiment, its tags (MLflow's and
nbtrack's own), and its params captured from the cell's code, earlier cells and the options."""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbtrack import tracking
from nbtrack._model import MAX_TAG_VALUE_LENGTH, Run
from nbtrack._redact import stored_value
from nbtrack._version import VERSION
from nbtrack.kernel import executions
from nbtrack.kernel.context import notebook_path, watching
from nbtrack.kernel.params import SessionLiterals

__all__ = ["KERNEL_SESSION", "CellOptions", "new_run", "session_literals"]

KERNEL_SESSION = uuid.uuid4().hex


@dataclass
class CellOptions:
    """What ``%%track`` was told (already validated)."""

    experiment: str | None = None
    name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    capture_params: bool = True
    plot: bool = True
    # Show the system metrics (CPU, memory, GPU) in the live view and the record.
    system: bool = False
    # A sweep's trials (nbtrack.sweep): the journal of their parent run, which the sync process
    # resolves to the parent's id, and no record of their own (the sweep's record shows them).
    parent_journal: str | None = None
    record: bool = True


# Literal assignments of the cells the kernel ran, for params a tracked cell reads.
session_literals = SessionLiterals()


def new_run(shell: Any, options: CellOptions, body: str) -> Run:
    """The run of a tracked cell with code ``body``, under ``options``; params captured (and
    redacted) unless ``--no-params``."""
    path = notebook_path(shell.user_ns)
    cell_id = executions.cell_id()
    code_hash = hashlib.sha256(body.encode()).hexdigest()[:16]
    uri = tracking.resolve_uri()
    # Without -e: the experiment chosen the MLflow way (mlflow.set_experiment in the kernel, a
    # team's MLFLOW_EXPERIMENT_NAME or _ID), else the notebook's name, else MLflow's Default.
    experiment, chosen_id = (
        (options.experiment, None) if options.experiment else tracking.chosen_experiment()
    )
    fallback = Path(path).stem if path else "Default"
    run = Run(
        run_name=options.name or time.strftime("run-%Y%m%d-%H%M%S"),
        experiment_name=experiment or ("" if chosen_id else fallback),
        experiment_id=chosen_id,
        fallback_experiment=fallback if chosen_id else None,
        tracking_uri=uri,
        notebook_path=path,
        cell_id=cell_id,
        live_view=options.plot and watching(),
        parent_journal=options.parent_journal,
    )
    run.tags.update(
        {
            "mlflow.source.type": "NOTEBOOK",
            "mlflow.source.name": path or "<unsaved notebook>",
            "nbtrack.code_hash": code_hash,
            "nbtrack.kernel_session": KERNEL_SESSION,
            "nbtrack.version": VERSION,
            "nbtrack.cell": cell_id or code_hash,
        }
    )
    if cell_id:
        run.tags["nbtrack.cell_id"] = cell_id
    outer = tracking.active_mlflow_run_id()
    if outer is not None:
        # A run the user started by hand stays open: ours nests under it instead of failing
        # with MLflow's "Run ... is already active".
        run.tags["mlflow.parentRunId"] = outer
    run.tags.update(
        {
            key: stored_value(value, MAX_TAG_VALUE_LENGTH, key=key)
            for key, value in options.tags.items()
        }
    )
    params: dict[str, Any] = {}
    if options.capture_params:
        captured = session_literals.params_for(_python_source(shell, body), shell.user_ns)
        params.update(captured.values)
        run.params_from_session = captured.from_session
        if captured.from_session:
            run.tags["nbtrack.params_from_session"] = ",".join(captured.from_session)
    params.update(options.params)
    run.add_params({key: stored_value(value, key=key) for key, value in params.items()})
    return run


def _python_source(shell: Any, body: str) -> str:
    try:
        return str(shell.transform_cell(body))
    except Exception:  # noqa: BLE001 - IPython will report the syntax problem when it runs the cell
        return body
