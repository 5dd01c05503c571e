"""Begin and end of a tracked cell: the run's lifecycle around IPython's own execution.

The cell runs exactly as IPython would run it untracked (same namespace, last expression
displayed, top-level ``await``, the same traceback); nbtrack only starts the run before the
body and ends it in IPython's ``post_run_cell`` event, with the status the execution result
tells: FINISHED, FAILED (exception) or KILLED (KeyboardInterrupt, i.e. a kernel interrupt).

Starting a run costs the kernel no MLflow call: the run's journal starts, and the sync process
creates the run in the store a moment later. MLflow itself is touched only if the cell uses
it (``import mlflow``, or a framework that does): then the run is made MLflow's active run, so
that those calls land in it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
import traceback
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbtrack import _registry, _sender, tracking
from nbtrack._buffer import Buffer
from nbtrack._model import MAX_TAG_VALUE_LENGTH, Run, RunFailure, Status, value_text
from nbtrack._redact import redact_code, redact_text, stored_value
from nbtrack._registry import TrackedRun
from nbtrack._settings import settings
from nbtrack._version import VERSION
from nbtrack.errors import NbtrackWarning
from nbtrack.journal.writer import Journal, JournalError, adopt_orphans, session_for
from nbtrack.kernel.code import CodeRecorder, environment_files, start_reading_environment
from nbtrack.kernel.context import notebook_path
from nbtrack.kernel.interrupts import interrupts_deferred
from nbtrack.kernel.params import SessionLiterals
from nbtrack.kernel.progress import follow_mlflow, poll, tell_store_problem, wait_synced
from nbtrack.kernel.system import SystemSamples
from nbtrack.view.live import LiveView

__all__ = ["CellOptions", "begin", "end", "warm_up", "watching"]

KERNEL_SESSION = uuid.uuid4().hex
# Where a person watches and nobody waits for the saved file, a cell's end does not wait for
# the upload (its record updates itself in place); headless, it waits up to this long, so that
# the notebook a papermill or nbconvert run saves ends with final records.
_HEADLESS_END_WAIT_S = 60.0


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


@dataclass
class CellInfo:
    """The cell being executed, as IPython's pre_run_cell event described it."""

    raw_cell: str = ""
    cell_id: str | None = None


current_cell = CellInfo()
session_literals = SessionLiterals()
_code = CodeRecorder()


def watching() -> bool:
    """Whether a person watches this kernel's outputs live (JupyterLab/Notebook, VS Code),
    as opposed to nbclient, papermill or nbconvert; ``NBTRACK_LIVE_PLOT`` decides if set."""
    explicit = settings().live_view
    if explicit is not None:
        return explicit
    return bool(os.environ.get("JPY_SESSION_NAME") or os.environ.get("VSCODE_PID"))


def warm_up() -> None:
    """When nbtrack loads: read the environment, and if dead kernels left journals for this
    store, start the sync process that replays them; in the background, once."""
    global _warm  # noqa: PLW0603 - once per kernel
    if _warm:
        return
    _warm = True
    start_reading_environment()

    def adopt() -> None:
        with contextlib.suppress(Exception):  # the first tracked cell reports store problems
            adopt_orphans(tracking.resolve_uri())
        # The sender's curves need numpy; importing it here, off any cell, spares the first
        # tracked cell's first batch ~0.15 s.
        import numpy  # noqa: F401

    threading.Thread(target=adopt, name="nbtrack-adopt", daemon=True).start()


_warm = False


# ------------------------------------------------------------------ begin


def begin(shell: Any, options: CellOptions, body: str) -> TrackedRun:
    """Start tracking ``body`` (the cell without its ``%%track`` line)."""
    if _registry.current() is not None:
        from IPython.core.error import UsageError

        msg = "this cell is already tracked: use %%track (or %track) once per cell"
        raise UsageError(msg)
    start_reading_environment()
    run = _new_run(shell, options, body)
    session = session_for(run.tracking_uri)
    # From the journal's first line to the run's registration an interrupt would leave a run
    # that nobody ends: it is held back until the run is registered, then ends it KILLED.
    with interrupts_deferred():
        try:
            journal = Journal(session, run)
        except JournalError as error:
            from IPython.core.error import UsageError

            raise UsageError(str(error)) from None
        tracked = TrackedRun(run=run, buffer=Buffer(), journal=journal)
        tracked.buffer.overflow = lambda: _sender.drain(tracked)
        tracked.views.append(LiveView(run, tracked.drain_lock))
        tracked.poll = lambda: poll(tracked)
        if settings().system_metrics > 0:
            tracked.system = SystemSamples(journal.path, show_all=options.system)
        _registry.activate(tracked)
        if run.params:
            tracked.buffer.pending.append(("params", dict(run.params)))
        _code.stage(journal, shell, body)
        tracked.buffer.pending.append(("artifact", ("code", "code")))
    tell_store_problem(session.store_problem(), run.tracking_uri)
    _sender.ensure_sender().wake()
    follow_mlflow(tracked)
    return tracked


def _new_run(shell: Any, options: CellOptions, body: str) -> Run:
    path = notebook_path(shell.user_ns)
    code_hash = hashlib.sha256(body.encode()).hexdigest()[:16]
    run = Run(
        run_name=options.name or time.strftime("run-%Y%m%d-%H%M%S"),
        # MLflow's own default experiment when the notebook's name cannot be known.
        experiment_name=options.experiment or (Path(path).stem if path else "Default"),
        tracking_uri=tracking.resolve_uri(),
        notebook_path=path,
        cell_id=current_cell.cell_id,
        live_view=options.plot and watching(),
    )
    run.tags.update(
        {
            "mlflow.source.type": "NOTEBOOK",
            "mlflow.source.name": path or "<unsaved notebook>",
            "nbtrack.code_hash": code_hash,
            "nbtrack.kernel_session": KERNEL_SESSION,
            "nbtrack.version": VERSION,
            "nbtrack.cell": current_cell.cell_id or code_hash,
        }
    )
    if current_cell.cell_id:
        run.tags["nbtrack.cell_id"] = current_cell.cell_id
    outer = tracking.active_mlflow_run_id()
    if outer is not None:
        # A run the user started by hand stays open: ours nests under it instead of failing
        # with MLflow's "Run ... is already active".
        run.tags["mlflow.parentRunId"] = outer
    run.tags.update(
        {key: stored_value(value, MAX_TAG_VALUE_LENGTH) for key, value in options.tags.items()}
    )
    params: dict[str, Any] = {}
    if options.capture_params:
        captured = session_literals.params_for(_python_source(shell, body), shell.user_ns)
        params.update(captured.values)
        run.params_from_session = captured.from_session
        if captured.from_session:
            run.tags["nbtrack.params_from_session"] = ",".join(captured.from_session)
    params.update(options.params)
    run.add_params({key: stored_value(value) for key, value in params.items()})
    return run


def _python_source(shell: Any, body: str) -> str:
    try:
        return str(shell.transform_cell(body))
    except Exception:  # noqa: BLE001 - IPython will report the syntax problem when it runs the cell
        return body


# ------------------------------------------------------------------ end


def end(result: Any) -> None:
    """IPython's post_run_cell: end the run this cell started, whatever happened in it."""
    tracked = _registry.current()
    if tracked is None:
        return
    run = tracked.run
    error = None if result is None else (result.error_in_exec or result.error_before_exec)
    with interrupts_deferred():
        _undo_at_end(tracked)
        _registry.deactivate(tracked)
        _finish(tracked, error)
    if tracked.import_watch is not None:
        tracking.remove_import_watch(tracked.import_watch)
    if tracked.mlflow_attached and run.run_id is not None:
        tracking.release(run.run_id)
    wait = settings().end_wait
    if wait is None:
        wait = 0.0 if watching() else _HEADLESS_END_WAIT_S
    if wait > 0:
        with contextlib.suppress(KeyboardInterrupt):  # interrupting stops the wait, not the run
            wait_synced(tracked, wait)
    poll(tracked, final=True)
    for view in tracked.views:
        if isinstance(view, LiveView):
            view.finish(run)


def _undo_at_end(tracked: TrackedRun) -> None:
    """Run what the cell asked to undo at its end (a watched model's hooks, a sampler), last
    registered first, while the run is still active: what they log lands in it. One that fails
    is reported and keeps neither the others nor the run's end from happening."""
    while tracked.at_end:
        undo = tracked.at_end.pop()
        try:
            undo()
        except Exception as error:  # noqa: BLE001 - the run must end whatever a hook does
            warnings.warn(
                f"nbtrack: cleaning up after the cell failed: {error!r}",
                NbtrackWarning,
                stacklevel=2,
            )


def _finish(tracked: TrackedRun, error: BaseException | None) -> None:
    """Status, final drain and the journal's end line, with interrupts held back so that an
    interrupt cannot leave the run half-ended."""
    run = tracked.run
    if error is None:
        run.status = Status.FINISHED
    elif isinstance(error, KeyboardInterrupt):
        run.status = Status.KILLED
    else:
        run.status = Status.FAILED
    pending = tracked.buffer.pending
    if error is not None:
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        run.failure = RunFailure(
            type(error).__name__, redact_text(str(error)), redact_code(text), run.last_step
        )
        pending.append(
            (
                "tags",
                {
                    "nbtrack.error": value_text(
                        redact_text(f"{type(error).__name__}: {error}"), 4900
                    ),
                    "mlflow.note.content": (
                        f"Cell ended {run.status.value}:\n```\n{run.failure.traceback[-4500:]}```"
                    ),
                },
            )
        )
        with contextlib.suppress(OSError):
            tracked.journal.stage_text("error/traceback.txt", run.failure.traceback)
            pending.append(("artifact", ("error", "error")))
    files = environment_files()
    if files is not None:
        with contextlib.suppress(OSError):
            tracked.journal.stage_text("environment/environment.json", files[0])
            tracked.journal.stage_text("environment/requirements.txt", files[1])
            pending.append(("artifact", ("environment", "environment")))
    run.end_time_ms = int(time.time() * 1000)
    _sender.drain(tracked)
    tracked.journal.end(run)
