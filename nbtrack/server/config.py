"""Settings of nbtrack's Jupyter server extension (``c.NbtrackServer.*`` in Jupyter's config)."""

from __future__ import annotations

from traitlets import Bool, Float, Int, Unicode
from traitlets.config import Configurable


class NbtrackServer(Configurable):
    """How the Jupyter server finds and shows the MLflow runs of a notebook."""

    tracking_uri = Unicode(
        None,
        allow_none=True,
        help=(
            "Tracking store whose runs the server lists, for every notebook. When unset, the "
            "server's $MLFLOW_TRACKING_URI is used, else MLflow's default next to the notebook "
            "(sqlite:///<notebook folder>/mlflow.db), which is where a kernel started for that "
            "notebook logs."
        ),
    ).tag(config=True)

    ui_autostart = Bool(
        False,
        help=(
            "Start an MLflow UI for a notebook's store when its runs are listed, so that every "
            "run comes with a link. Off by default: a UI is a process of its own (~150 MB); "
            "it can always be started on request (POST /nbtrack/api/ui)."
        ),
    ).tag(config=True)

    max_runs = Int(
        200,
        help="Most runs listed per notebook (newest first).",
    ).tag(config=True)

    store_timeout = Float(
        20.0,
        help=(
            "Seconds to wait for the tracking store before answering 503, waiting for a free "
            "thread included (a store keeps at most 2 of the extension's 4 threads, also for "
            "calls that timed out and go on). MLflow's client retries an unreachable server "
            "for minutes; the Jupyter page should not wait that long."
        ),
    ).tag(config=True)

    ui_start_timeout = Float(
        120.0,
        help="Seconds to wait for a newly started MLflow UI to answer before giving up.",
    ).tag(config=True)
