"""MLflow's own logging calls for the tracked run, made inside its cell, through nbtrack.

A framework that logs with MLflow (Lightning's ``MLFlowLogger``, Transformers'
``report_to="mlflow"``, ``mlflow.autolog()``, a plain ``mlflow.log_metric``) calls the
methods of ``MlflowClient`` that every MLflow logging path ends in. For the tracked run, while
its cell executes, those calls are taken over here:

- metrics go to ``nbtrack.log`` with their step: the fast path (a list append instead of a
  store round trip of ~5 ms per call), the live view and the record;
- params and tags go to the run's journal like ``nbtrack.log_params`` (redacted, checked);
- ``set_terminated`` and ``mlflow.end_run()`` are ignored for it: the run ends with its cell,
  with the cell's status, and stays MLflow's active run until then;
- ``mlflow.start_run()`` (MLflow's ``with mlflow.start_run():`` idiom) opens it instead of
  raising "already active": its ``run_name``, ``tags`` and ``description`` apply to it.
  ``nested=True`` starts a child run as usual; another experiment is refused with the fix.

Any other run, metrics tied to a logged model or a dataset, and every call outside the cell
go to MLflow unchanged. Installed once, in the kernel only, the first time a tracked run
becomes MLflow's active run (``kernel/progress.follow_mlflow``): it never imports MLflow itself.

Lightning's ``MLFlowLogger`` is made to join the tracked run (``watch_frameworks``, from each
tracked cell's start): one created in the cell without a ``run_id`` logs into the tracked run
and its store instead of creating a run of its own (its ``experiment_name`` and
``tracking_uri`` are then not used). Transformers' MLflow callback needs nothing: it logs into
MLflow's active run, which the tracked run is.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any

from nbtrack import _api, _buffer, _registry
from nbtrack._import_watch import when_imported
from nbtrack._model import MAX_TAG_VALUE_LENGTH, check_key
from nbtrack._redact import stored_value
from nbtrack._registry import TrackedRun

__all__ = ["install"]

_installed = False


def install() -> None:
    """Route ``MlflowClient`` calls for the tracked run through nbtrack (once per kernel)."""
    global _installed  # noqa: PLW0603 - patched once per process
    if _installed:
        return
    _installed = True
    from mlflow.tracking.client import MlflowClient

    for name, replacement in (
        ("log_batch", _log_batch),
        ("log_metric", _log_metric),
        ("log_param", _log_param),
        ("set_tag", _set_tag),
        ("set_terminated", _set_terminated),
    ):
        original = getattr(MlflowClient, name)
        setattr(MlflowClient, name, _routed(original, replacement))
    _keep_the_tracked_run_active()
    _open_the_tracked_run()


def _tracked_and_active() -> tuple[TrackedRun, Any] | None:
    """The tracked run and MLflow's ``ActiveRun`` for it, while it is MLflow's active run."""
    from mlflow.tracking import fluent

    tracked = _registry.current()
    active = fluent.active_run()
    if (
        tracked is not None
        and tracked.mlflow_attached
        and active is not None
        and active.info.run_id == tracked.run.run_id
    ):
        return tracked, active
    return None


def _keep_the_tracked_run_active() -> None:
    """``mlflow.end_run()`` in the cell leaves the tracked run MLflow's active run. Ending it
    would make the next MLflow call start a run of its own (in the Default experiment), which
    every later tracked cell would then take for a run the user left open: its parent. The
    tracked run ends with its cell, as for ``set_terminated``. Any other run ends as usual."""
    import mlflow
    from mlflow.tracking import fluent

    original = fluent.end_run

    @functools.wraps(original)
    def end_run(*args: Any, **kwargs: Any) -> Any:
        if _tracked_and_active() is not None:
            return None
        return original(*args, **kwargs)

    end_run.__nbtrack_original__ = original  # type: ignore[attr-defined]
    # `mlflow.end_run` is the same function bound under a second name.
    fluent.end_run = end_run
    mlflow.end_run = end_run


def _open_the_tracked_run() -> None:
    """``mlflow.start_run()`` in the cell returns the tracked run, so that MLflow's own idiom
    (``with mlflow.start_run(): ...``, in MLflow's examples and many notebooks) logs into it
    instead of failing with "Run ... is already active"; leaving the ``with`` block ends
    nothing (``end_run`` above). A child run (``nested=True``, ``parent_run_id``) starts as
    usual, in its parent's experiment, and another run named by id as MLflow decides; a second
    top-level run in another experiment cannot exist beside the tracked one, and the error says
    what to write instead."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import fluent

    original = fluent.start_run
    signature = inspect.signature(original)

    @functools.wraps(original)
    def start_run(*args: Any, **kwargs: Any) -> Any:
        both = _tracked_and_active()
        if both is None:
            return original(*args, **kwargs)
        tracked, active = both
        bound = signature.bind(*args, **kwargs)
        call = bound.arguments
        parent = call.get("parent_run_id")
        if call.get("nested") or parent:
            # A child of the tracked run goes where its parent is. MLflow would put it in the
            # experiment of `set_experiment` or the environment, else Default: the tracked run
            # was started in its experiment by the sync process, not by MLflow's fluent API.
            if (
                parent in (None, tracked.run.run_id)
                and call.get("experiment_id") is None
                and call.get("run_id") is None
            ):
                call["experiment_id"] = active.info.experiment_id
            return original(*bound.args, **bound.kwargs)
        if call.get("run_id") not in (None, tracked.run.run_id):
            return original(*args, **kwargs)
        experiment = call.get("experiment_id")
        if experiment is not None and str(experiment) != active.info.experiment_id:
            msg = (
                f"this cell's run is tracked by %%track in experiment "
                f"{tracked.run.experiment_name!r}, and MLflow allows one top-level run at a "
                f"time: mlflow.start_run(experiment_id={experiment!r}) cannot open another. "
                "Write %%track -e <experiment name> to track the cell in that experiment, or "
                "pass nested=True for a child run of this one."
            )
            raise MlflowException(msg)
        tags = dict(call.get("tags") or {})
        if call.get("run_name"):
            tags[_RUN_NAME] = call["run_name"]
        if call.get("description"):
            tags[_DESCRIPTION] = call["description"]
        if tags:
            _log_tags(tracked, tags)
        return active

    start_run.__nbtrack_original__ = original  # type: ignore[attr-defined]
    fluent.start_run = start_run
    mlflow.start_run = start_run


# MLflow's tags for a run's name and its description (its UI's notes).
_RUN_NAME = "mlflow.runName"
_DESCRIPTION = "mlflow.note.content"


def _routed(original: Callable[..., Any], replacement: Callable[..., Any]) -> Any:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def method(self: Any, run_id: str, *args: Any, **kwargs: Any) -> Any:
        tracked = _tracked_for(run_id)
        if tracked is None:
            return original(self, run_id, *args, **kwargs)
        call = signature.bind(self, run_id, *args, **kwargs)
        call.apply_defaults()
        return replacement(tracked, call.arguments, original)

    method.__nbtrack_original__ = original  # type: ignore[attr-defined]
    return method


def _tracked_for(run_id: object) -> TrackedRun | None:
    """The tracked run if ``run_id`` is it and its cell is executing; else None."""
    tracked = _registry.current()
    if tracked is None or not tracked.mlflow_attached or run_id is None:
        return None
    return tracked if tracked.run.run_id == run_id else None


def _done(synchronous: bool | None) -> Any:
    """What MLflow returns for a call that is done: None, or for an asynchronous call a
    ``RunOperations`` with nothing left to wait for."""
    from mlflow.environment_variables import MLFLOW_ENABLE_ASYNC_LOGGING

    if synchronous is False or (synchronous is None and MLFLOW_ENABLE_ASYNC_LOGGING.get()):
        from mlflow.utils.async_logging.run_operations import RunOperations

        return RunOperations([])
    return None


def _ties(metric: Any) -> bool:
    # MLflow 3 links a metric to a logged model or a dataset; nbtrack's journal does not carry
    # those links, so such metrics go to MLflow as they are.
    return bool(getattr(metric, "model_id", None) or getattr(metric, "dataset_name", None))


def _log_metrics(metrics: Iterable[Any]) -> None:
    """Metrics as ``nbtrack.log`` calls, one per step, in the order given."""
    values: dict[str, Any] = {}
    step: int | None = None
    for metric in metrics:
        at = int(metric.step or 0)
        if values and (at != step or metric.key in values):
            _buffer.log(values, step=step)
            values = {}
        step = at
        values[metric.key] = metric.value
    if values:
        _buffer.log(values, step=step)


def _log_tags(tracked: TrackedRun, tags: dict[str, Any]) -> None:
    for key in tags:
        check_key(key, "tag")
    stored = {
        key: stored_value(value, MAX_TAG_VALUE_LENGTH, key=key) for key, value in tags.items()
    }
    tracked.run.tags.update(stored)
    if _RUN_NAME in stored:  # MLflow renames the run; the record follows
        tracked.run.run_name = stored[_RUN_NAME]
    tracked.buffer.pending.append(("tags", stored))


# Each replacement gets the tracked run, the call's arguments by name (MLflow's signature,
# defaults applied) and MLflow's own method, for what it leaves to MLflow.
_Call = dict[str, Any]


def _log_batch(tracked: TrackedRun, call: _Call, original: Callable[..., Any]) -> Any:
    metrics = list(call["metrics"] or ())
    _log_metrics(m for m in metrics if not _ties(m))
    if call["params"]:
        _api.log_params({p.key: p.value for p in call["params"]})
    if call["tags"]:
        _log_tags(tracked, {t.key: t.value for t in call["tags"]})
    tied = [m for m in metrics if _ties(m)]
    if tied:
        return original(call["self"], call["run_id"], metrics=tied, synchronous=call["synchronous"])
    return _done(call["synchronous"])


def _log_metric(tracked: TrackedRun, call: _Call, original: Callable[..., Any]) -> Any:  # noqa: ARG001
    if call.get("dataset_name") or call.get("model_id"):
        return original(**call)
    _buffer.log({call["key"]: call["value"]}, step=int(call["step"] or 0))
    return _done(call["synchronous"])


def _log_param(tracked: TrackedRun, call: _Call, original: Callable[..., Any]) -> Any:  # noqa: ARG001
    _api.log_params({call["key"]: call["value"]})
    operations = _done(call["synchronous"])
    return call["value"] if operations is None else operations


def _set_tag(tracked: TrackedRun, call: _Call, original: Callable[..., Any]) -> Any:  # noqa: ARG001
    _log_tags(tracked, {call["key"]: call["value"]})
    return _done(call["synchronous"])


def _set_terminated(tracked: TrackedRun, call: _Call, original: Callable[..., Any]) -> None:  # noqa: ARG001
    # The tracked run ends with its cell (FINISHED, FAILED or KILLED), not when a framework
    # says its part is done: Lightning's MLFlowLogger ends "its" run after fit.
    return


_frameworks_watched = False


def watch_frameworks() -> None:
    """Make Lightning's ``MLFlowLogger`` join tracked runs, whenever Lightning is imported
    (once per kernel; called at each tracked cell's start, and cheap after the first)."""
    global _frameworks_watched  # noqa: PLW0603 - once per process
    if _frameworks_watched:
        return
    _frameworks_watched = True
    for module in ("lightning.pytorch.loggers.mlflow", "pytorch_lightning.loggers.mlflow"):
        when_imported(module, _join_mlflow_logger)


def _join_mlflow_logger(module: Any) -> None:
    """``module.MLFlowLogger`` (Lightning's), created in a tracked cell without a ``run_id``,
    logs into the tracked run and its store; elsewhere it behaves as it always does."""
    cls = getattr(module, "MLFlowLogger", None)
    if cls is None or getattr(cls, "_nbtrack_joins", False):
        return
    original = cls.__init__
    signature = inspect.signature(original)

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        call = signature.bind(self, *args, **kwargs)
        if _registry.current() is not None and call.arguments.get("run_id") is None:
            import mlflow  # noqa: F401 - importing it makes the tracked run MLflow's active run

            tracked = _registry.current()
            if tracked is not None and tracked.mlflow_attached and tracked.run.run_id:
                call.arguments["run_id"] = tracked.run.run_id
                # The tracked run's store, not Lightning's default of ./mlruns (a file store,
                # which MLflow 3.7+ refuses) nor the one MLFLOW_TRACKING_URI had at import.
                call.arguments["tracking_uri"] = tracked.run.tracking_uri
        original(*call.args, **call.kwargs)

    cls.__init__ = __init__
    cls._nbtrack_joins = True
