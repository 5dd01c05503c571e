"""What the kernel learns from the sync process about a run, and shows: its id and link in
MLflow, how far the upload got, whether the store is reachable. It also makes the run MLflow's
active run when the cell uses MLflow, which needs the id the sync process gave it.

The sender thread calls ``poll`` at each wake for every run still draining, and the cell's end
calls it once more; after the cell, a change redraws the run's record in place. ``poll`` also
has the session look, about once a second, whether the kernel's credentials for the store
changed, so that fixing them in any cell restarts the sync process with them.
"""

from __future__ import annotations

import threading

from nbtrack import tracking
from nbtrack._import_watch import when_imported
from nbtrack._model import Batch, Run
from nbtrack._redact import redact_text, strip_uri_credentials
from nbtrack._registry import TrackedRun
from nbtrack.integrations import mlflow_bridge
from nbtrack.journal.access import ACCESS_REFUSED
from nbtrack.ui.links import run_url  # at the top: the sender's thread must import nothing
from nbtrack.view.live import LiveView, show_notice

__all__ = ["follow_mlflow", "learn_identity", "poll", "tell_store_problem", "wait_synced"]

# How long a cell that uses MLflow waits for the sync process to create its run: a kernel's
# first run waits for MLflow's import and, in a new folder, the store's creation.
_ATTACH_WAIT_S = 60.0


def follow_mlflow(tracked: TrackedRun) -> None:
    """Make the run MLflow's active run as soon as MLflow is in use in this kernel (now, or
    when the cell imports it), so that ``mlflow.*`` calls in the cell land in it."""

    def attach(_module: object) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # MLflow's active run is per thread; the cell runs in the main one
        run_id = tracked.journal.wait_for_run_id(_ATTACH_WAIT_S)
        progress = tracked.journal.progress()
        # (A run id without the run's info: a sync process of an older nbtrack made the run.)
        if run_id is None or progress.run_info is None:
            show_notice(
                "nbtrack: the tracking store did not create this run in time, so mlflow "
                "calls in this cell do not land in it (nbtrack.log still does)."
            )
            return
        learn_identity(tracked.run, run_id, progress.experiment_id, progress.experiment_name)
        tracking.attach(progress.run_info)
        tracked.mlflow_attached = True
        # From now on MLflow's own logging calls for this run (a framework's logger, autolog)
        # take nbtrack's fast path into the same run.
        mlflow_bridge.install()

    tracked.import_watch = when_imported("mlflow", attach)
    # Lightning's MLFlowLogger, created in the cell, joins the run instead of making its own.
    mlflow_bridge.watch_frameworks()


def wait_synced(tracked: TrackedRun, timeout: float) -> None:
    journal = tracked.journal
    session = journal.session

    def settled() -> bool:
        progress = journal.progress()
        # Offline, or refused: the record says so at once rather than after the timeout.
        return (
            progress.synced or progress.problem is not None or session.store_problem() is not None
        )

    session.wait(timeout, until=settled)


def poll(tracked: TrackedRun, final: bool = False) -> bool:
    """Bring the run's identity and sync state up to date from the sync process; redraw the
    record if the cell ended and something changed. True once nothing more will change."""
    run = tracked.run
    journal = tracked.journal
    # While a run waits, credentials fixed in any cell (or a token rotated while this one
    # runs) must reach the sync process: looked at about once a second, off the loop.
    journal.session.check_credentials()
    if run.ended and not journal.ended:
        journal.retry_end()  # the disk was full at the cell's end; try again
    progress = journal.progress()
    journal.tell(run)
    before = (run.run_id, run.sync_state, run.pending_points, run.store_problem, run.ui_url)
    if progress.run_id is not None:
        learn_identity(run, progress.run_id, progress.experiment_id, progress.experiment_name)
    if progress.problem is not None and progress.problem != run.store_problem:
        # This run, not the store, was refused (a deleted experiment, a permission): said once.
        show_notice(
            f"nbtrack: the tracking store did not accept run {run.run_name!r}: "
            f"{redact_text(progress.problem)}. It stays in the local journal; `nbtrack sync` "
            "uploads it once that is fixed."
        )
    run.store_problem = progress.problem
    total = sum(curve.count for curve in run.curves.values())
    if progress.synced:
        run.sync_state, run.pending_points = "synced", 0
    else:
        unreachable = journal.session.store_problem()
        tell_store_problem(unreachable, run.tracking_uri)
        offline = unreachable is not None or progress.problem is not None
        run.sync_state = "offline" if offline else "syncing"
        # Points that never reached the journal are not on their way: they are lost.
        run.pending_points = journal.pending_points(total - run.lost_points)
    after = (run.run_id, run.sync_state, run.pending_points, run.store_problem, run.ui_url)
    # System metrics samples (and, after the cell, its GPU energy) the sync process took.
    sampled = tracked.system is not None and tracked.system.follow(tracked)
    if (after != before or sampled) and not final:
        for view in tracked.views:
            if not isinstance(view, LiveView):
                continue
            if run.ended:
                view.refresh(run)
            else:
                with tracked.drain_lock:  # the live view reads the curves
                    view.update(run, Batch())
    return run.ended and progress.synced


_told: dict[str, bool] = {}


def tell_store_problem(problem: str | None, uri: str) -> None:
    """Say once per outage, in the cell's output, that the store is unreachable and that
    nothing is lost; say nothing while it lasts, and again only after it ended. An outage is
    the store's, whatever credentials its URI carries (a password fixed in it is no new one)."""
    where = strip_uri_credentials(uri)
    if problem is None:
        _told.pop(where, None)
        return
    if _told.get(where):
        return
    _told[where] = True
    if problem.startswith(ACCESS_REFUSED):  # the store answers, and says no
        show_notice(f"nbtrack: the tracking store {where} {redact_text(problem)}.")
        return
    show_notice(
        f"nbtrack: the tracking store {where} is not reachable ({redact_text(problem)}). "
        "Tracking goes on offline: everything is kept in the local journal and uploaded when "
        "the store answers (or with `nbtrack sync`)."
    )


def learn_identity(
    run: Run, run_id: str, experiment_id: str | None, experiment_name: str | None = None
) -> None:
    """The run exists in the store: its id, and its experiment as the store has it."""
    if run.run_id == run_id:
        return
    chosen = run.experiment_id if run.fallback_experiment is not None else None
    run.run_id = run_id
    run.experiment_id = experiment_id
    if experiment_name:
        run.experiment_name = experiment_name
    if chosen is not None and experiment_id != chosen:
        show_notice(
            f"nbtrack: experiment id {chosen} (chosen with MLFLOW_EXPERIMENT_ID or "
            f"mlflow.set_experiment) is not in the tracking store, so run {run.run_name!r} went "
            f"to experiment {run.experiment_name!r}. Name the experiment with %%track -e NAME."
        )
    run.ui_url = run_url(run.tracking_uri, experiment_id, run_id)
