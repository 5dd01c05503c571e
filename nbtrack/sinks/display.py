"""The cell's output slot: the live plot while the cell runs, the run's record when it ends.

One display id per run. The slot shows the live plot (or, headless, a one-line notice) and is
replaced in place by the record at the end, so the record sits where the plot was and no other
output of the cell is touched (no ``clear_output``).
"""

from __future__ import annotations

import html
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbtrack.run import Run
    from nbtrack.sinks import Batch


class DisplaySink:
    def __init__(self) -> None:
        self.display_id: str | None = None
        self.live: Any = None

    def start(self, run: Run) -> None:
        from IPython.display import display

        if run.live_plot:
            from nbtrack.sinks.plot import LivePlot

            self.live = LivePlot(run)
            handle = display(self.live.widget, display_id=True)
        else:
            handle = display(_notice(run), raw=True, display_id=True)
        self.display_id = None if handle is None else handle.display_id

    def update(self, run: Run, batch: Batch) -> None:  # noqa: ARG002 - the plot reads run.curves
        if self.live is not None:
            self.live.update(run)

    def end(self, run: Run) -> None:
        from IPython.display import display, update_display

        bundle = record_bundle(run)
        if self.live is not None:
            # Closing the widgets removes their models, so no widget state (and no plotly.js
            # bundle) is left to be saved into the notebook.
            self.live.close()
            self.live = None
        if self.display_id is not None:
            update_display(bundle, raw=True, display_id=self.display_id)
        else:
            display(bundle, raw=True)


def record_bundle(run: Run) -> dict[str, Any]:
    from nbtrack.record import RecordSource, build_bundle

    error = None
    if run.error is not None:
        last_step = max((int(c.last_step) for c in run.curves.values()), default=None)
        error = {"type": run.error.type, "message": run.error.message, "step": last_step}
    source = RecordSource(
        run_id=run.run_id,
        run_name=run.run_name,
        experiment_id=run.experiment_id,
        experiment_name=run.experiment_name,
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
    )
    bundle: dict[str, Any] = build_bundle(source)
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
    text = f"nbtrack: tracking run {run.run_name!r} in experiment {run.experiment_name!r}"
    return {
        "text/plain": text,
        "text/html": f"<small>{html.escape(text)}</small>",
    }
