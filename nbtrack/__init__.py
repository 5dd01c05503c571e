"""nbtrack: a notebook cell tracked as an MLflow run, with live curves and a saved record.

In a notebook::

    %load_ext nbtrack            # or: import nbtrack

    %%track --experiment mnist
    lr = 3e-3                    # literal assignments become params
    for epoch in range(5):
        nbtrack.log(loss=train(), val_acc=evaluate())

Importing this package is cheap: MLflow, plotly and torch are imported when first needed.
"""

from __future__ import annotations

from importlib import metadata as _metadata
from typing import Any

from nbtrack.run import active_run, log, log_artifact, log_params

try:
    __version__ = _metadata.version("nbtrack")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__", "active_run", "log", "log_artifact", "log_params", "wait"]


def wait(timeout: float | None = None) -> bool:
    """Block until every run of this kernel is stored in MLflow.

    Cells return at most about a second after they end (``NBTRACK_END_WAIT``) and a slow store
    gets the rest in the background; call this before reading runs back with MLflow's client.
    Returns False if ``timeout`` (seconds) ran out first. Interrupting stops the wait, not the
    upload.
    """
    from nbtrack.sinks.mlflow import wait_all

    return wait_all(timeout)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbtrack``: register ``%%track``, ``%track_ui`` and the cell hooks."""
    from nbtrack._ipython import register

    register(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from nbtrack._ipython import unregister

    unregister(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "nbtrack"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nbtrack.server"}]


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
