"""What the integrations share: the tracked run they work on, MLflow's client attached to it,
and params given by a framework that must not break its training loop."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

from nbtrack import _api, _registry
from nbtrack._redact import REDACTED, is_secret_name, stored_value
from nbtrack._registry import TrackedRun
from nbtrack.errors import NbtrackWarning, NoActiveRunError, RunNotInStoreError

__all__ = ["at_cell_end", "flat_params", "log_params_leniently", "mlflow_run_id", "tracked"]


def tracked(what: str) -> TrackedRun:
    """The tracked cell's run, or NoActiveRunError naming ``nbtrack.<what>()``."""
    run = _registry.current()
    if run is None:
        raise NoActiveRunError(what)
    return run


def at_cell_end(run: TrackedRun, undo: Callable[[], object]) -> None:
    """Have ``undo`` called when the tracked cell ends (``kernel/cell.end``), whatever happens."""
    run.at_end.append(undo)


def mlflow_run_id(run: TrackedRun, what: str) -> str:
    """The tracked run's id once it is MLflow's active run in this kernel.

    Importing MLflow (the first time: ~1.5 s) makes the kernel attach the run
    (``kernel/progress.follow_mlflow``), which waits for the sync process to create it. MLflow's
    own calls made after this land in the tracked run, never in a new one.

    Raises:
        RunNotInStoreError: the store did not create the run (unreachable or too slow).
    """
    import mlflow

    active = mlflow.active_run()
    run_id = run.run.run_id
    if not run.mlflow_attached or run_id is None or active is None or active.info.run_id != run_id:
        msg = (
            f"nbtrack.{what}() needs the run in MLflow, and the tracking store "
            f"{_api.RunInfo(run).tracking_uri} has not created it (it is not reachable, or "
            "too slow to answer). Metrics, params and artifacts are kept and uploaded later; "
            f"call nbtrack.{what}() again once the store answers, or save the object with "
            "torch.save and nbtrack.log_artifact."
        )
        raise RunNotInStoreError(msg)
    return run_id


def flat_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level, names joined with ``/`` (``{"optim": {"lr": 1}}`` ->
    ``{"optim/lr": 1}``), as MLflow's own framework loggers flatten them."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flat_params(value, f"{name}/"))
        else:
            flat[name] = value
    return flat


def log_params_leniently(params: Mapping[str, Any], source: str) -> None:
    """Log params a framework gives (hyperparameters, training arguments), never failing its
    training: a name MLflow would refuse, or a value that contradicts one the cell already
    logged, is left out with one warning that names them (a framework logs its own view of
    values the cell set, e.g. ``3`` for ``3.0``)."""
    run = tracked("log_params")
    accepted: dict[str, str] = {}
    refused: list[str] = []
    for key, value in params.items():
        # A framework's config can hold a token (hub_token, an API key): never stored.
        text = (
            REDACTED
            if is_secret_name(str(key)) and value not in (None, "")
            else stored_value(value)
        )
        try:
            new = run.run.add_params({str(key): text})
        except ValueError:
            refused.append(str(key))
            continue
        accepted.update(new)
    if accepted:
        run.buffer.pending.append(("params", accepted))
    if refused:
        shown = ", ".join(repr(k) for k in refused[:5]) + (" ..." if len(refused) > 5 else "")
        warnings.warn(
            f"nbtrack: {source} params not logged (a name MLflow refuses, or already logged "
            f"with another value in this run): {shown}",
            NbtrackWarning,
            stacklevel=3,
        )
