"""A tracked run in the kernel: its lifecycle, its metric buffer and the active-run registry.

``log`` is the hot path of a training loop, so it only validates cheaply and appends to a list:
its usual call in C (``nbtrack/_hotpath.c``, a float64 row added to a block), anything else in
Python (``_log_py``, one tuple per call). Turning those into per-metric points (steps, floats),
writing them anywhere and drawing them happens in the sender thread (``nbtrack._sender``), in
batches.
"""

from __future__ import annotations

import enum
import functools
import math
import numbers
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbtrack.errors import NoActiveRunError
from nbtrack.secrets import redact_text

if TYPE_CHECKING:
    from nbtrack._curves import Curve
    from nbtrack.sinks import Sink

# MLflow's own limits on keys (see mlflow.utils.validation); checked early so that a bad name
# fails the call that used it instead of a batch upload minutes later.
_MAX_KEY_LENGTH = 250
_KEY_CHARS = re.compile(r"^[/\w.\- ]+$")
MAX_PARAM_VALUE_LENGTH = 6000
_TRUNCATION_MARKER = "...[truncated by nbtrack]"
_MAX_STEP = 2**63 - 1

# `log` calls held in memory before the caller has to help the sender (~30 MB of tuples).
MAX_BUFFERED_CALLS = 100_000

# Plain Python numbers skip every further check on the hot path.
_PLAIN_NUMBERS = frozenset({float, int})
_now = time.time


class Status(enum.Enum):
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


@dataclass
class RunError:
    """Why a run did not finish: shown in its record and stored with it."""

    type: str
    message: str
    traceback: str


@dataclass
class Run:
    """One execution of a tracked cell.

    The fields a user may read through ``nbtrack.active_run()`` are ``run_id``, ``run_name``,
    ``experiment_id``, ``experiment_name``, ``tracking_uri``, ``params`` and ``status``.
    ``run_id`` is None while the tracking store is unreachable (the run is spooled offline and
    created once the store answers).
    """

    run_name: str
    experiment_name: str
    tracking_uri: str
    run_id: str | None = None
    experiment_id: str | None = None
    ui_url: str | None = None
    notebook_path: str | None = None
    cell_id: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    start_time_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    end_time_ms: int | None = None
    status: Status = Status.RUNNING
    error: RunError | None = None
    live_plot: bool = True

    # Hot-path buffer, in call order: (step or None, unix time in s, names, values) per `log`
    # call, or (names, bytearray) for a block of calls the C version packed as float64 rows
    # [time, values...] (see nbtrack/_hotpath.c). Only `log` appends (or extends the last
    # block) and only the sender removes (`del calls[:n]`, before reading what it removed):
    # single operations under the GIL, so neither takes a lock.
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    # Params, tags and artifacts waiting for the sender, in call order.
    pending: list[tuple[str, Any]] = field(default_factory=list)
    # Metric names already validated; values of other types than float/int need conversion.
    known_keys: set[str] = field(default_factory=set)
    tensor_keys: set[str] = field(default_factory=set)
    needs_conversion: bool = False
    # Filled by the sender: per-metric history and the next implicit step of each metric.
    curves: dict[str, Curve] = field(default_factory=dict)
    next_step: dict[str, int] = field(default_factory=dict)
    sinks: list[Sink] = field(default_factory=list)
    # Held by whoever turns `calls` into batches, so the final drain at cell end and the
    # sender thread never interleave.
    drain_lock: threading.Lock = field(default_factory=threading.Lock)
    sync_state: str = "syncing"
    pending_points: int = 0
    # Where log_artifact copies files at call time, so later changes to them are not uploaded.
    staging_dir: Path | None = None
    _staged: int = 0

    @property
    def ended(self) -> bool:
        return self.status is not Status.RUNNING

    def add_params(self, params: Mapping[str, object]) -> dict[str, str]:
        """Validate and record params; return them as the strings MLflow will store."""
        cleaned = {}
        for key, value in params.items():
            check_key(key, "param")
            text = param_text(value)
            previous = self.params.get(key)
            if previous is not None and previous != text:
                msg = (
                    f"param {key!r} was already logged as {previous!r} in this run and MLflow "
                    f"params cannot change; log {text!r} under another name, or as a metric"
                )
                raise ValueError(msg)
            cleaned[key] = text
        self.params.update(cleaned)
        return cleaned


def param_text(value: object) -> str:
    """A param value as MLflow stores it: text, cut at MLflow's limit with a visible marker."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, tuple | list | dict | set):
        text = repr(value)
    else:
        text = str(value)
    text = redact_text(text)
    if len(text) > MAX_PARAM_VALUE_LENGTH:
        text = text[: MAX_PARAM_VALUE_LENGTH - len(_TRUNCATION_MARKER)] + _TRUNCATION_MARKER
    return text


def check_key(key: str, kind: str) -> None:
    """Raise a clear ValueError for a metric/param/tag name MLflow would reject."""
    problem = None
    if not isinstance(key, str) or not key:
        problem = "it is empty or not a string"
    elif len(key) > _MAX_KEY_LENGTH:
        problem = f"it is {len(key)} characters long, MLflow allows {_MAX_KEY_LENGTH}"
    elif not _KEY_CHARS.match(key):
        problem = "MLflow allows only letters, digits, '_', '-', '.', ' ' and '/' in names"
    elif ".." in key or key.startswith("/"):
        problem = "MLflow rejects names containing '..' or starting with '/'"
    if problem:
        msg = f"invalid {kind} name {key!r}: {problem}"
        raise ValueError(msg)


# ---------------------------------------------------------------- the active-run registry

_lock = threading.Lock()
_current: Run | None = None
# Runs that ended but whose data may still be on its way to a sink; the sender keeps draining them.
_draining: list[Run] = []
# Set by the sender module so that a new run wakes it up; avoids an import cycle.
on_new_run: Callable[[Run], None] | None = None


def current() -> Run | None:
    return _current


def activate(run: Run) -> None:
    global _current  # noqa: PLW0603 - the registry is module state by design: one kernel, one active run
    with _lock:
        _current = run
        _draining.append(run)
        if _hotpath is not None:
            _hotpath.activate(
                run.calls,
                run.known_keys,
                run.tensor_keys,
                MAX_BUFFERED_CALLS,
                functools.partial(_drain_now, run),
            )
    if on_new_run is not None:
        on_new_run(run)


def deactivate(run: Run) -> None:
    global _current  # noqa: PLW0603
    with _lock:
        if _current is run:
            _current = None
            if _hotpath is not None:
                _hotpath.deactivate()


def runs_to_drain() -> list[Run]:
    with _lock:
        return list(_draining)


def forget(run: Run) -> None:
    with _lock:
        if run in _draining:
            _draining.remove(run)


# ---------------------------------------------------------------- the public hot path


def _log_py(step: int | None = None, **metrics: Any) -> None:
    """Log metric values for the current tracked cell: ``nbtrack.log(loss=loss, acc=acc)``.

    Values may be Python numbers, numpy scalars or one-element torch tensors. A CPU tensor is
    read at once (there is no device to wait for); a CUDA/MPS tensor is kept, detached, and read
    by the sender thread, so logging never forces a device synchronisation. NaN and inf are
    stored as they are. ``step`` defaults to a per-metric counter starting at 0.

    This call only appends to memory; nothing is written or sent while it runs (unless a loop
    that does nothing but log gets 100k calls ahead of the sender: then it helps drain them).

    Raises:
        NoActiveRunError: when called outside a ``%%track`` cell.
        TypeError: when a value is not a number (the message names the metric).
        ValueError: when a metric name is one MLflow would reject.
    """
    run = _current
    if run is None:
        raise NoActiveRunError("log")
    # C-level set checks cover the usual call: names seen before, float/int values.
    if not run.known_keys.issuperset(metrics):
        _check_new_keys(run, metrics)
    if not _PLAIN_NUMBERS.issuperset(map(type, metrics.values())):
        _convert(run, metrics)
    if step is not None and (type(step) is not int or not 0 <= step <= _MAX_STEP):
        step = _check_step(step)
    calls = run.calls
    calls.append((step, _now(), tuple(metrics), tuple(metrics.values())))
    if len(calls) > MAX_BUFFERED_CALLS:
        # A loop that does nothing but log can outrun the sender thread; rather than let
        # memory grow, the caller spools this backlog itself (rare: ~100k calls in one
        # sender interval).
        _drain_now(run)


def _load_hot_path() -> Any:
    """nbtrack._hotpath, the C version of ``log``'s usual call, unless it was not built (no C
    compiler at install) or ``NBTRACK_PURE_PYTHON=1`` asks for the Python version."""
    if os.environ.get("NBTRACK_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from nbtrack import _hotpath
    except ImportError:
        return None
    return _hotpath


_hotpath = _load_hot_path()
# What users call as ``nbtrack.log``: the C version where it was built, which hands every call
# it does not take (new names, other types, errors) to ``_log_py``.
log: Callable[..., None] = _log_py if _hotpath is None else _hotpath.make_log(_log_py)


def rows_taken(run: Run, rows: int) -> None:
    """The sender took blocks of ``rows`` rows out of ``run``'s buffer (the C version counts
    what waits there, to bound it)."""
    if _hotpath is not None:
        _hotpath.taken(run.calls, rows)


def _drain_now(run: Run) -> None:
    from nbtrack._sender import drain

    drain(run)


def _check_new_keys(run: Run, metrics: dict[str, Any]) -> None:
    for key in metrics:
        if key not in run.known_keys:
            check_key(key, "metric")
            run.known_keys.add(key)


def _convert(run: Run, metrics: dict[str, Any]) -> None:
    """Make the values of one call storable: read CPU tensors, detach device tensors, check
    anything else. Replacing values while iterating is safe: the dict's size never changes."""
    for key, value in metrics.items():
        kind = type(value)
        if kind in _PLAIN_NUMBERS:
            continue
        # A CPU tensor has no device to wait for: reading it now is cheaper than keeping it
        # (detach alone costs 2x more) and frees its autograd graph at once.
        if kind is _tensor_type and key in run.tensor_keys and value.is_cpu:
            metrics[key] = value.item()
        else:
            _check_value(run, key, value, metrics)


# torch.Tensor once a tensor has been logged: a plain identity check on the hot path then
# avoids importing torch (or asking whether it is installed) for loops that never log one.
_tensor_type: type | None = None


def _check_value(run: Run, key: str, value: Any, metrics: dict[str, Any]) -> None:
    global _tensor_type  # noqa: PLW0603 - a cache of one type object
    kind = type(value)
    module = kind.__module__
    if module == "torch":
        if key not in run.tensor_keys:
            _check_tensor(key, value)
            run.tensor_keys.add(key)
        if _tensor_type is None and kind.__name__ == "Tensor":
            _tensor_type = kind
            if _hotpath is not None:
                _hotpath.set_tensor_type(kind)
        if value.is_cpu:
            metrics[key] = value.item()
            return
        # Keep a device tensor as it is (no .item(): that would wait for the device), without
        # its autograd graph so that logging does not keep the graph alive.
        if value.requires_grad:
            metrics[key] = value.detach()
        run.needs_conversion = True
        return
    if module == "numpy" and getattr(value, "ndim", 1) == 0 and value.dtype.kind in "biuf":
        run.needs_conversion = True
        return
    if isinstance(value, numbers.Real):  # bool, Fraction, Decimal...
        run.needs_conversion = True
        return
    msg = (
        f"metric {key!r} must be a number, got {kind.__name__} {value!r:.80}. "
        "Pass a float, an int, a numpy scalar or a one-element tensor."
    )
    raise TypeError(msg)


def _check_tensor(key: str, value: Any) -> None:
    if value.numel() != 1 or value.is_complex():
        msg = (
            f"metric {key!r} is a tensor of shape {tuple(value.shape)}; log a single "
            "number, e.g. loss.mean() or tensor.item() on a 1-element tensor"
        )
        raise TypeError(msg)


def _check_step(step: Any) -> int:
    if (
        isinstance(step, bool)
        or not isinstance(step, numbers.Integral)
        or not 0 <= int(step) <= _MAX_STEP
    ):
        msg = f"step must be an integer from 0 to 2**63 - 1 (MLflow's int64), got {step!r}"
        raise TypeError(msg)
    return int(step)


def to_float(value: Any) -> float:
    """Convert a logged value to a float; called by the sender, never on the hot path."""
    if type(value) is float:
        return value
    try:
        if type(value).__module__ == "torch":
            return float(value.item())
        return float(value)
    except (TypeError, ValueError, OverflowError, RuntimeError):
        # A tensor that changed shape after its first check: stored as NaN, visibly.
        return math.nan


def log_params(**params: Any) -> None:
    """Record parameters of the current tracked cell (in addition to the captured ones).

    Values become text as MLflow stores them; an over-long value is cut at MLflow's 6000
    characters with a visible marker. Raises ValueError if a param already has another value.
    """
    run = _current
    if run is None:
        raise NoActiveRunError("log_params")
    cleaned = run.add_params(params)
    run.pending.append(("params", cleaned))


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    """Store a file or a folder with the current run (copied now, uploaded in the background).

    The copy is taken at call time, so a checkpoint overwritten later in the cell is stored as
    it was when logged.
    """
    run = _current
    if run is None:
        raise NoActiveRunError("log_artifact")
    source = Path(path)
    if not source.exists():
        msg = f"cannot log artifact {str(source)!r}: no such file or folder"
        raise FileNotFoundError(msg)
    if run.staging_dir is not None:
        run._staged += 1
        target = run.staging_dir / f"artifact-{run._staged}" / source.name
        target.parent.mkdir(parents=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        source = target
    run.pending.append(("artifact", (source.resolve(), artifact_path)))


def active_run() -> Run | None:
    """The run of the tracked cell being executed, or None outside one."""
    return _current
