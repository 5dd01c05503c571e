"""nbtrack: a notebook cell tracked as an MLflow run, with live curves and a saved record.

In a notebook::

    %load_ext nbtrack            # or: import nbtrack

    %%track --experiment mnist
    lr = 3e-3                    # literal assignments become params
    for epoch in range(5):
        nbtrack.log({"train/loss": train(), "val/acc": evaluate()}, step=epoch)

PyTorch: ``nbtrack.watch(model, optimizer)``, ``nbtrack.log_model``, ``nbtrack.log_checkpoint``,
``nbtrack.log_dataset``; Lightning: ``nbtrack.lightning.Logger()``; Hugging Face's Trainer:
``nbtrack.transformers.Callback()``.

Compare runs with ``nbtrack.runs()`` (a pandas DataFrame) and ``nbtrack.compare(...)`` (a plotly
Figure). Importing this package is cheap: MLflow, pandas, plotly, torch and the frameworks are
imported when first needed.
"""

from __future__ import annotations

import sys
from typing import Any

from nbtrack import _buffer
from nbtrack._api import RunInfo, active_run, log_artifact, log_params, wait
from nbtrack._buffer import log
from nbtrack._version import VERSION as __version__
from nbtrack.integrations.datasets import log_dataset
from nbtrack.integrations.models import log_checkpoint, log_model
from nbtrack.integrations.watch import watch

__all__ = [
    "RunInfo",
    "__version__",
    "active_run",
    "compare",
    "log",
    "log_artifact",
    "log_checkpoint",
    "log_dataset",
    "log_model",
    "log_params",
    "runs",
    "wait",
    "watch",
]

# Imported on first use (they need pandas and plotly): see __getattr__.
_LAZY = {"compare": "nbtrack.comparison", "runs": "nbtrack.comparison"}
# Submodules that import their framework, loaded on first use: nbtrack.lightning.Logger().
_FRAMEWORK_MODULES = frozenset({"lightning", "transformers"})


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _FRAMEWORK_MODULES:
        return importlib.import_module(f"nbtrack.{name}")
    msg = f"module 'nbtrack' has no attribute {name!r}"
    raise AttributeError(msg)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbtrack``: register ``%%track``, ``%track_ui`` and the cell hooks."""
    from nbtrack.shell import register

    register(ipython)
    # `nbtrack.log(...)` works in the next cell without an import.
    ipython.user_ns.setdefault("nbtrack", sys.modules[__name__])


def unload_ipython_extension(ipython: Any) -> None:
    from nbtrack.shell import unregister

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
