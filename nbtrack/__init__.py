"""nbtrack: a notebook cell tracked as an MLflow run, with live curves and a saved record.

In a notebook::

    %load_ext nbtrack            # or: import nbtrack

    %%track --experiment mnist
    lr = 3e-3                    # literal assignments become params
    for epoch in range(5):
        nbtrack.log({"train/loss": train(), "val/acc": evaluate()}, step=epoch)

Importing this package is cheap: MLflow, plotly and torch are imported when first needed.
"""

from __future__ import annotations

from typing import Any

from nbtrack import _buffer
from nbtrack._api import RunInfo, active_run, log_artifact, log_params, wait
from nbtrack._buffer import log
from nbtrack._version import VERSION as __version__

__all__ = [
    "RunInfo",
    "__version__",
    "active_run",
    "log",
    "log_artifact",
    "log_params",
    "wait",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbtrack``: register ``%%track``, ``%track_ui`` and the cell hooks."""
    from nbtrack.kernel import register

    register(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from nbtrack.kernel import unregister

    unregister(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "nbtrack"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nbtrack.server"}]


def _log_from_another_process(what: str) -> _buffer.Buffer:
    """``nbtrack.log`` outside a tracked cell: in a process that a tracked cell started (a
    worker, a torch.distributed rank), the cell's run; anywhere else NoActiveRunError."""
    from nbtrack.journal.child import attach

    return attach(what)


_buffer.outside_run = _log_from_another_process


def _register_on_import() -> None:
    # `import nbtrack` inside IPython makes %%track available without %load_ext.
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        load_ipython_extension(shell)


_register_on_import()
