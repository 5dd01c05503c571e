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
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from typing import Any

from nbtrack import _registry, _sender, tracking
from nbtrack._buffer import Buffer
from nbtrack._import_watch import remove_import_watch
from nbtrack._interrupts import HeldInterrupts, interrupts_deferred
from nbtrack._model import Run, RunFailure, Status, value_text
from nbtrack._redact import redact_text
from nbtrack._registry import TrackedRun
from nbtrack._settings import settings
from nbtrack.errors import NbtrackWarning
from nbtrack.journal import child
from nbtrack.journal.session import adopt_orphans, session_for
from nbtrack.journal.writer import Journal, JournalError
from nbtrack.kernel import executions
from nbtrack.kernel.code import CodeRecorder, environment_files, start_reading_environment
from nbtrack.kernel.context import end_wait
from nbtrack.kernel.progress import follow_mlflow, poll, tell_store_problem, wait_synced
from nbtrack.kernel.run_data import CellOptions, new_run
from nbtrack.kernel.system import SystemSamples
from nbtrack.record.metrics import BEST_TAG, best_values_tag
from nbtrack.view.live import LiveView

__all__ = [
    "CellOptions",
    "begin",
    "cell_ended",
    "cell_started",
    "end",
    "end_background",
    "warm_up",
]


_code = CodeRecorder()


def warm_up() -> None:
    """When nbtrack loads: read the environment, and if dead kernels left journals for this
    store, start the sync process that replays them; in the background, once."""
    global _warm  # noqa: PLW0603 - once per kernel
    if _warm:
        return
    _warm = True
    # Read here, in the loading cell: a bad NBTRACK_* value is then told under that cell, not
    # by a background thread after it ended (when the warning would be lost).
    settings()
    # What nbtrack's threads will import (numpy for the sender's curves and the record's
    # thinning, ~70 ms), imported here in the main thread: a thread's first import of a package
    # races the cell's own (torch, pandas and MLflow import numpy too), and CPython's import
    # locks may then hand one of the two a half-made module ("cannot import name ... most
    # likely due to a circular import"), failing the user's cell.
    import nbtrack._decimate  # noqa: F401 - numpy with it

    start_reading_environment()

    def adopt() -> None:
        with contextlib.suppress(Exception):  # the first tracked cell reports store problems
            adopt_orphans(tracking.resolve_uri())

    threading.Thread(target=adopt, name="nbtrack-adopt", daemon=True).start()


_warm = False


# ------------------------------------------------------------------ begin


def begin(
    shell: Any,
    options: CellOptions,
    body: str,
    *,
    own_cell: bool = False,
    background: bool = False,
    view: Callable[[Run, threading.Lock], LiveView] = LiveView,
) -> TrackedRun:
    """Start tracking ``body``: the cell being executed without its ``%%track`` line, whose
    end ends the run (``cell_ended``); or, ``own_cell``, code about to run as a cell of its
    own (``run_cell_magic``, a sweep's trial), whose caller ends the run (``end``).

    ``background``: a run that no code logs into (a sweep's parent): drained and followed like
    any run but never the current one, ended by its caller with ``end_background``. ``view``
    makes the record shown under the cell."""
    current = _registry.current()
    if current is not None and not background:
        _refuse_second_run(current, own_cell)
    start_reading_environment()
    run = new_run(shell, options, body)
    # From the journal's first line to the run's registration an interrupt would leave a run
    # that nobody ends: it is held back until the run is registered, then ends it KILLED.
    with interrupts_deferred():
        try:
            session = session_for(run.tracking_uri)
            journal = Journal(session, run)
        except OSError as error:  # a JournalError, or no session folder (read-only, full)
            from IPython.core.error import UsageError

            raise UsageError(str(_journal_error(error))) from None
        tracked = TrackedRun(run=run, buffer=Buffer(), journal=journal)
        tracked.cell = executions.innermost()
        tracked.buffer.overflow = lambda: _sender.drain(tracked)
        if options.record:
            tracked.views.append(view(run, tracked.drain_lock))
        tracked.poll = lambda: poll(tracked)
        if settings().system_metrics > 0:
            tracked.system = SystemSamples(journal.path, show_all=options.system)
        if background:
            _registry.keep(tracked)
        else:
            _registry.activate(tracked)
            child.share(journal.path)  # processes the cell starts log into this run too
        if run.params:
            tracked.buffer.pending.append(("params", dict(run.params)))
        if _code.stage(journal, shell, body):
            tracked.buffer.pending.append(("artifact", ("code", "code")))
        _sender.ensure_sender().wake()
    tell_store_problem(session.store_problem(), run.tracking_uri)
    if not background:
        follow_mlflow(tracked)
    return tracked


def _journal_error(error: OSError) -> OSError:
    if isinstance(error, JournalError):
        return error
    from nbtrack.journal.folders import spool_root

    return JournalError(
        f"nbtrack cannot create its journal folder in {spool_root()} "
        f"({error.strerror or error}), so it cannot track this cell; set NBTRACK_SPOOL_DIR "
        "to a writable folder with free space"
    )


def _refuse_second_run(current: TrackedRun, own_cell: bool) -> None:
    from IPython.core.error import UsageError

    if not own_cell and current.cell is not None and current.cell is executions.innermost():
        msg = "this cell is already tracked: use %%track (or %track) once per cell"
    else:
        msg = (
            f"%%track cannot start a run inside the tracked cell of run {current.run.run_name!r} "
            "(a cell run from it with get_ipython().run_cell or run_cell_magic): nested "
            "tracked cells are not supported, so this code was not run, and the outer run "
            "goes on. Log into the outer run with nbtrack.log, or track this code in a cell "
            "of its own."
        )
    raise UsageError(msg)


# ------------------------------------------------------------------ end


def cell_started(shell: Any, info: Any) -> None:
    """IPython's pre_run_cell. A run whose cell is over by now lost its end (an interrupt
    hit IPython's post_run_cell event before nbtrack could hold it back): it ends here."""
    # An interrupt this early is dropped, as it would be a moment before, while idle.
    with interrupts_deferred(raise_held=False) as held:
        executions.started(info)
        tracked = _registry.current()
        if tracked is not None and not executions.is_running(tracked.cell):
            last = getattr(shell, "last_execution_result", None)
            _end(tracked, last if getattr(last, "info", None) is tracked.cell else None, held)


def cell_ended(result: Any, *, interrupted: bool = False) -> None:
    """IPython's post_run_cell: end the tracked run if this was its cell (not a cell it ran
    with ``get_ipython().run_cell``, whose end is not the tracked cell's). ``interrupted``:
    an interrupt came as the cell ended, so the end does not wait for the upload."""
    with interrupts_deferred(raise_held=False) as held:
        held.pending = held.pending or interrupted
        executions.ended(result)
        tracked = _registry.current()
        if tracked is not None and not executions.is_running(tracked.cell):
            own = tracked.cell is None or getattr(result, "info", None) is tracked.cell
            _end(tracked, result if own else None, held)


def end(
    tracked: TrackedRun, result: Any, *, wait: bool = True, status: Status | None = None
) -> None:
    """End ``tracked`` with the outcome of the execution ``result`` (an ``ExecutionResult``)
    of its code: FINISHED, FAILED or KILLED, or ``status`` (a pruned trial is KILLED).
    ``wait=False``: never wait for the upload (a sweep's trial; the sweep waits at its end)."""
    with interrupts_deferred(raise_held=False) as held:
        _end(tracked, result, held, wait=wait, status=status)


def end_background(tracked: TrackedRun, error: BaseException | None) -> None:
    """End a ``background`` run: FINISHED without ``error``, KILLED for a KeyboardInterrupt,
    FAILED otherwise (the error is recorded as a cell's would be)."""
    with interrupts_deferred(raise_held=False) as held:
        if not tracked.run.ended:
            _close(tracked, error, held, wait=True)


def _end(
    tracked: TrackedRun,
    result: Any,
    held: HeldInterrupts,
    *,
    wait: bool = True,
    status: Status | None = None,
) -> None:
    """End the run, with interrupts held back until it is ended and its record shown; one
    that comes meanwhile only cuts the wait for the upload short. ``result`` None: the
    cell's outcome is unknown (its end event was lost to an interrupt), so the run ends
    KILLED."""
    if _registry.current() is not tracked:
        return  # ended already
    if result is None:
        error: BaseException | None = KeyboardInterrupt("interrupted at the cell's end")
    else:
        error = result.error_in_exec or result.error_before_exec
    _close(tracked, error, held, wait=wait, status=status)


def _close(
    tracked: TrackedRun,
    error: BaseException | None,
    held: HeldInterrupts,
    *,
    wait: bool,
    status: Status | None = None,
) -> None:
    run = tracked.run
    _undo_at_end(tracked)
    if _registry.current() is tracked:
        child.unshare()
    _registry.deactivate(tracked)
    _finish(tracked, error, status)
    if tracked.import_watch is not None:
        remove_import_watch(tracked.import_watch)
    if tracked.mlflow_attached and run.run_id is not None:
        tracking.release(run.run_id)
    headless_wait = end_wait()  # 0 where a person watches (or NBTRACK_END_WAIT=0)
    seconds = headless_wait if wait else 0.0
    if seconds > 0 and not held.pending:
        # Interrupting stops the wait, not the run.
        with contextlib.suppress(KeyboardInterrupt), held.interruptible():
            wait_synced(tracked, seconds)
    poll(tracked, final=True)
    for view in tracked.views:
        if isinstance(view, LiveView):
            # Headless, the notebook saved after the cell keeps the record as drawn now: it
            # must be whole. Where nobody waits, the PNG is added off the cell's time.
            view.finish(run, png_later=headless_wait == 0)


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


def _user_namespace() -> dict[str, Any]:
    from IPython import get_ipython

    shell = get_ipython()
    return {} if shell is None else dict(shell.user_ns)


def _finish(tracked: TrackedRun, error: BaseException | None, status: Status | None) -> None:
    """Status, final drain and the journal's end line, with interrupts held back so that an
    interrupt cannot leave the run half-ended."""
    run = tracked.run
    if status is not None:
        run.status = status
    elif error is None:
        run.status = Status.FINISHED
    elif isinstance(error, KeyboardInterrupt):
        run.status = Status.KILLED
    else:
        run.status = Status.FAILED
    pending = tracked.buffer.pending
    if error is not None:
        # The failure goes to a tag, the run's note, an artifact and the record: redacted once
        # here, by the text rules and by every secret value the kernel is known to hold.
        known = _code.known_secrets(_user_namespace())
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        message = redact_text(str(error), known)
        run.failure = RunFailure(
            type(error).__name__, message, redact_text(text, known), run.last_step
        )
        pending.append(
            (
                "tags",
                {
                    "nbtrack.error": value_text(f"{type(error).__name__}: {message}", 4900),
                    "mlflow.note.content": (
                        f"Cell ended {run.status.value}:\n```\n{run.failure.traceback[-4500:]}```"
                    ),
                },
            )
        )
        if tracked.journal.stage_text("error/traceback.txt", run.failure.traceback):
            pending.append(("artifact", ("error", "error")))
    files = environment_files()
    if (
        files is not None
        and tracked.journal.stage_text("environment/environment.json", files[0])
        and tracked.journal.stage_text("environment/requirements.txt", files[1])
    ):
        pending.append(("artifact", ("environment", "environment")))
    run.end_time_ms = int(time.time() * 1000)
    _sender.drain(tracked)
    # Once every point is in the curves: for nbtrack.runs(), as MLflow keeps only last values.
    best = best_values_tag(run.curves)
    if best is not None:
        pending.append(("tags", {BEST_TAG: best}))
        _sender.drain(tracked)
    tracked.journal.tell(run)
    if run.lost_points or run.lost_items:
        # What could not be made durable will never be in the store: the run is not a clean
        # success, and its record and MLflow (upload._end) say FAILED, and why.
        run.status = Status.FAILED if run.status is Status.FINISHED else run.status
    tracked.journal.end(run)
