"""The output under a tracked cell: the run's record, drawn live while the cell runs.

The live view and the saved record are one picture. The cell's output slot (one display id per
run) shows the run's record bundle from the start, redrawn in place with ``update_display`` as
points arrive, and its last redraw is the record the notebook keeps. So JupyterLab with
nbtrack's extension, JupyterLab without it, nbconvert and GitHub all show the same panels,
colours, axes and legend, live and saved, and nothing else is needed: no widget (whose state
and ~5 MB of plotly.js would be saved with the notebook), no ``clear_output`` (other outputs of
the cell stay), no second chart implementation.

What keeps it cheap however long the run:

- ``update`` (called by the sender after each batch) only compares a counter with the last one
  drawn and the clock with the next redraw time. A redraw happens at most once per
  ``NBTRACK_PLOT_INTERVAL`` seconds (0.5: two a second); data that arrives inside the interval
  is drawn at its end by a one-shot timer, so the view never stops short of the last step.
- A redraw's payload is the record, whose curves are decimated to a fixed budget: its size does
  not grow with the number of points, nor with the number of metrics.
- Live redraws leave out the record's PNG (its HTML card embeds the SVG chart meanwhile); the
  final record has it. Where nobody waits for the cell's end (a person watches, or
  ``NBTRACK_END_WAIT=0``) the end shows the final record without it, and a background thread
  adds it in place a moment later: rasterising costs 20-45 ms, which would be most of what
  tracking adds to a later cell (benchmarks/bench_cell.py). Headless, the end draws it itself,
  so that the notebook saved right after the cell has it.

Headless (nbclient, papermill, nbconvert), where nobody watches, the slot holds a one-line
notice until the cell ends and is then replaced by the record.
"""

from __future__ import annotations

import html
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from nbtrack._settings import settings

if TYPE_CHECKING:
    from nbtrack._model import Batch, Run

__all__ = ["LiveView", "record_bundle", "show_notice"]


class LiveView:
    """One run's output slot. Create it in the main thread when the cell starts."""

    def __init__(self, run: Run, drain_lock: threading.Lock) -> None:
        from IPython.display import display

        self.live = run.live_view
        self.interval = settings().plot_interval
        self._drain_lock = drain_lock
        # Everything below is guarded by _lock: the sender thread, the timer thread and the
        # main thread's finish() all come through it.
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._drawn: tuple[object, ...] | None = None
        self._next_draw = 0.0
        self._final = False
        # Whether the final record shown has its PNG (see finish).
        self._png_shown = False
        self.redraws = 0
        first = self.bundle(run, png=False) if self.live else _notice(run)
        handle = display(first, raw=True, display_id=True)
        self.display_id = None if handle is None else handle.display_id
        if self.live:
            self._drawn = self.change_key(run)

    def bundle(self, run: Run, *, png: bool) -> dict[str, Any]:
        """What is drawn: the run's record (a sweep's view adds its trials)."""
        return record_bundle(run, png=png)

    def change_key(self, run: Run) -> tuple[object, ...]:
        """Changes exactly when what ``bundle`` draws changed."""
        return _change_key(run)

    def update(self, run: Run, batch: Batch) -> None:  # noqa: ARG002 - the Output protocol
        """Redraw if the run changed and the last redraw is at least ``interval`` old; cheap
        when nothing is due. Called by the sender with the run's drain lock held."""
        if not self.live:
            return
        with self._lock:
            self._tick(run)

    def finish(self, run: Run, *, png_later: bool = False) -> None:
        """The cell ended: show the run's record (live or not) and stop redrawing.
        ``png_later``: nobody waits for the cell's end, so the record is shown at once without
        its PNG, and a background thread adds the PNG in place."""
        with self._lock:
            self._final = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._show(run, final=True, png=not png_later)
        if png_later and run.curves:  # (no curves, no chart: nothing to add)
            from nbtrack.record.png import prepare

            prepare()
            threading.Thread(
                target=self._add_png, args=(run,), name="nbtrack-record-png", daemon=True
            ).start()

    def refresh(self, run: Run) -> None:
        """After the cell: the record changed (stored at last, a run id arrived); show it.
        Nothing happens before ``finish``: the cell's end shows the record first."""
        with self._lock:
            if self._final:
                self._show(run, final=True)

    def _add_png(self, run: Run) -> None:
        # A refresh that came first drew it already (the run was stored meanwhile).
        with self._lock:
            if not self._png_shown:
                self._show(run, final=True)

    # ------------------------------------------------------------------ internals, under _lock

    def _tick(self, run: Run) -> None:
        if self._final:
            return
        state = self.change_key(run)
        if state == self._drawn:
            return
        now = time.monotonic()
        if now < self._next_draw:
            self._schedule(run, self._next_draw - now)
            return
        self._next_draw = now + self.interval
        self._drawn = state
        self._show(run, final=False)

    def _schedule(self, run: Run, delay: float) -> None:
        if self._timer is not None:
            return
        timer = threading.Timer(delay, self._on_timer, (run,))
        timer.name = "nbtrack-live-view"
        timer.daemon = True
        self._timer = timer
        timer.start()

    def _on_timer(self, run: Run) -> None:
        # The sender changes the curves only while holding the drain lock; taking it here
        # (before our own lock, the order the sender uses too) reads them consistently.
        with self._drain_lock, self._lock:
            self._timer = None
            self._tick(run)

    def _show(self, run: Run, *, final: bool, png: bool | None = None) -> None:
        """Draw the record; with its PNG if ``png`` (by default: if ``final``)."""
        from IPython.display import display, update_display

        png = final if png is None else png
        bundle = self.bundle(run, png=png)
        self._png_shown = png
        self.redraws += 1
        if self.display_id is not None:
            update_display(bundle, raw=True, display_id=self.display_id)
        else:
            display(bundle, raw=True)


def _change_key(run: Run) -> tuple[object, ...]:
    # Curve versions only grow, so their sum changes exactly when some curve changed.
    curves = run.curves
    return (
        len(curves),
        sum(c.version for c in curves.values()),
        run.sync_state,
        run.pending_points,
        run.run_id,
        run.lost_points + run.lost_items,
    )


def record_bundle(
    run: Run, *, png: bool = True, sweep: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The run's record as a display bundle (see ``nbtrack.record``); ``png=False`` leaves
    the chart's PNG out (live redraws); ``sweep``: a sweep's trials (``RecordSource.sweep``)."""
    from nbtrack.record import RecordSource, build_bundle

    failure = run.failure
    error = None
    if failure is not None:
        error = {"type": failure.type, "message": failure.message, "step": run.last_step}
    source = RecordSource(
        run_id=run.run_id,
        run_name=run.run_name,
        experiment_id=run.experiment_id,
        experiment_name=run.experiment_name or None,  # "" until an id's name is known
        status=run.status.value,
        start_time_ms=run.start_time_ms,
        end_time_ms=run.end_time_ms,
        tracking_uri=run.tracking_uri,
        ui_url=run.ui_url,
        notebook_path=_relative(run.notebook_path),
        cell_id=run.cell_id,
        params=dict(run.params),
        curves=dict(run.curves),
        error=error,
        sync_state=run.sync_state,
        pending_points=run.pending_points,
        lost_points=run.lost_points,
        lost_items=run.lost_items,
        lost_reason=run.lost_reason,
        sweep=sweep,
    )
    bundle: dict[str, Any] = build_bundle(source, png=png)
    return bundle


def _relative(path: str | None) -> str | None:
    # The record travels with the notebook: a home-folder path says nothing useful elsewhere.
    return None if path is None else os.path.basename(path)


def show_notice(text: str) -> None:
    """A one-line notice in the cell's output, where the user is looking (not a warning with
    a source line attached)."""
    from IPython.display import display

    display(
        {"text/plain": text, "text/html": f"<pre style='color:#b35900'>{html.escape(text)}</pre>"},
        raw=True,
    )


def _notice(run: Run) -> dict[str, str]:
    where = repr(run.experiment_name) if run.experiment_name else f"id {run.experiment_id}"
    text = f"nbtrack: tracking run {run.run_name!r} in experiment {where}"
    return {"text/plain": text, "text/html": f"<small>{html.escape(text)}</small>"}
