"""What the logging benchmarks share: a private store, a real IPython shell, table printing.

Each benchmark drives nbtrack the way a notebook does: ``%load_ext nbtrack`` and ``%%track``
cells executed by an IPython ``InteractiveShell``, so the real cell hooks, sender thread, spool
and sync process all run. Everything they write (SQLite store, spool, IPython profile) lives in
one temporary folder that is removed at exit.
"""

from __future__ import annotations

import atexit
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def isolate(name: str) -> Path:
    """Point MLflow, nbtrack and IPython at a fresh temporary folder, and make it the working
    folder; return it.

    Call before importing nbtrack or MLflow. The folder's removal is registered before
    nbtrack's own exit hook, so it runs after that hook has waited for the uploads. It is the
    working folder because MLflow puts a SQLite store's artifacts in ``./mlruns`` of the process
    that creates its experiments, and trackers write files relative to it too: without the
    change, a run of a benchmark leaves its runs' artifacts in the checkout.
    """
    folder = Path(tempfile.mkdtemp(prefix=f"nbtrack-{name}-"))
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
    os.environ["NBTRACK_SPOOL_DIR"] = str(folder / "spool")
    # No frontend watches a script: measure the headless path (a notice, no live widget).
    os.environ["NBTRACK_LIVE_PLOT"] = "0"
    os.environ["IPYTHONDIR"] = str(folder / "ipython")
    os.environ.pop("MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS", None)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.chdir(folder)
    return folder


def _discarding_publisher(shell: Any) -> Any:
    """An IPython display publisher that drops every output."""
    from IPython.core.displaypub import DisplayPublisher

    class Discard(DisplayPublisher):  # type: ignore[misc]
        def publish(self, *args: Any, **kwargs: Any) -> None:
            pass

        def clear_output(self, wait: bool = False) -> None:
            pass

    return Discard(shell=shell)


class Shell:
    """An IPython shell with nbtrack loaded; runs cells and reads their variables back."""

    def __init__(self) -> None:
        from IPython.core.interactiveshell import InteractiveShell

        self.shell: Any = InteractiveShell.instance()
        # Outputs are dropped, also those drawn after a cell ended (a record updated in place
        # when its upload finished), which a terminal shell would print.
        self.shell.display_pub = _discarding_publisher(self.shell)
        start = time.perf_counter()
        self.run("%load_ext nbtrack")
        # Seconds `%load_ext nbtrack` took (nbtrack's import included, if it was the first).
        self.load_ext_s = time.perf_counter() - start

    def run(self, code: str, track: str | None = None) -> None:
        """Execute ``code`` as one cell, tracked with ``%%track {track}`` when given.

        The cell's display output (the run's notice and record) is swallowed; a cell that
        fails raises here with its own exception.
        """
        from IPython.utils.capture import capture_output

        cell = code if track is None else f"%%track {track}\n{code}"
        with capture_output():
            result = self.shell.run_cell(cell, store_history=True)
        if not result.success:
            error = result.error_in_exec or result.error_before_exec
            msg = f"benchmark cell failed ({error!r}):\n{cell}"
            raise RuntimeError(msg) from error

    def __getitem__(self, name: str) -> Any:
        return self.shell.user_ns[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self.shell.user_ns[name] = value


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table, columns right-aligned except the first, as a Markdown table."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(cell).ljust(width) if i == 0 else str(cell).rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(parts) + " |"

    rule = "|" + "|".join(
        "-" * (w + 1) + ":" if i else ":" + "-" * (w + 1) for i, w in enumerate(widths)
    )
    return "\n".join([line(headers), rule + "|", *(line(row) for row in rows)])


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def fmt(value: float) -> str:
    """A figure with about three significant digits, without scientific notation."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"
