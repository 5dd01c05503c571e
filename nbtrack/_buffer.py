"""``nbtrack.log``, the hot path of a training loop, and the buffer it appends to.

This module owns the buffer's one format, both sides of it: ``log`` appends, ``take`` (called
by the sender thread) removes. A call costs a name check and a type check per value (and
reading a CPU tensor, as any tracker must), and one list append; no I/O, no lock, no device
synchronisation. Inside a real training loop, where every step evicts the caches, that is
about twice the floor of a list append of a timestamped dict (``benchmarks/bench_loop.py``).
Everything else (grouping points per metric, reading device tensors, writing the journal,
drawing) happens in the sender, off the loop.

The format: ``Buffer.calls`` holds one ``(step or None, unix time, {name: value})`` tuple per
call, in call order. Values are floats, or copies of tensors on a device that the sender reads
later (``Buffer.on_device`` says there may be some).
``Buffer.pending`` holds params, tags and artifacts in call order.

Only ``log`` (and ``log_into``, for a run no code logs into) appends and only ``take`` removes,
each with single list operations: ``take`` removes what it read with one ``del``, and anything
appended meanwhile sits after it.
"""

from __future__ import annotations

import inspect
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from nbtrack._model import MAX_STEP, check_key, checked_step, metric_value
from nbtrack._threads import current_task, ended_runs
from nbtrack.errors import NoActiveRunError

__all__ = ["MAX_BUFFERED_CALLS", "Buffer", "log", "log_into", "take"]

# Calls held in memory before the logging thread has to drain them itself (~20 MB).
MAX_BUFFERED_CALLS = 100_000

_now = time.time
_get_ident = threading.get_ident
_references = sys.getrefcount

# The reference count of a dict that only ``log``'s own argument holds (``sys.getrefcount``
# counts its argument too): a dict built for the call, such as a literal, a comprehension or a
# framework's fresh dict. Nobody else can change it after the call, so ``log`` keeps it rather
# than copying it (about 0.5 µs a call inside a training loop: bench_loop). Only where that
# count is known to be exact: CPython 3.11 to 3.13 with the GIL, whose calls hand their
# arguments over to the called frame (3.14 can put a variable on the stack without counting
# it, so a dict the caller keeps could look unshared). Elsewhere the value never matches and
# every dict is copied.
_UNSHARED = (
    2
    if sys.implementation.name == "cpython"
    and (3, 11) <= sys.version_info < (3, 14)
    and not sysconfig.get_config_var("Py_GIL_DISABLED")
    else -1
)


class Buffer:
    """What one tracked run's ``log`` calls append to."""

    __slots__ = (
        "calls",
        "cell_task",
        "helpers",
        "known",
        "limit",
        "on_device",
        "overflow",
        "owner",
        "pending",
        "watched",
    )

    def __init__(self, overflow: Callable[[], object] | None = None) -> None:
        self.calls: list[tuple[int | None, float, dict[str, Any]]] = []
        self.pending: list[tuple[str, Any]] = []
        # Metric names already checked in this run: a dict used as a set. Inside a training
        # loop, where the caches are cold, its membership test measured cheaper than a set's
        # (bench_loop): it shares its lookup code with the ``values[key]`` just before it.
        self.known: dict[str, None] = {}
        self.limit = MAX_BUFFERED_CALLS
        # Called when a loop got ``limit`` calls ahead of the sender: drains the buffer from
        # the logging thread, so that memory stays bounded (rare: ~100k calls in 0.5 s).
        self.overflow = overflow
        # The thread that runs the cell, and other threads (by ident) and asyncio tasks seen
        # logging into the run (see nbtrack._threads: which run their points belong to).
        self.owner = threading.get_ident()
        self.helpers: set[object] = set()
        # The asyncio task that runs the cell, if any: tasks the cell starts are helpers.
        self.cell_task: object = None
        # Whether a call kept a tensor on a device, for the sender to read.
        self.on_device = False
        # Names whose every call ``overflow`` sees right after it (a pruned sweep's metric):
        # never added to ``known``, so they take the slow path, which sets ``limit`` to 0.
        self.watched: frozenset[str] = frozenset()

    @property
    def guarded(self) -> bool:
        return type(self.known) is _GuardedNames

    def guard(self, loggers: frozenset[object]) -> None:
        """Send every call of ``loggers`` (threads, by ident, and asyncio tasks of ended runs)
        to ``_admit``, which refuses them; names they log first are never admitted, but names
        the run admitted are."""
        self.known = _GuardedNames(self.known, loggers)

    def unguard(self) -> None:
        """Back to the plain check, once no thread of an ended run is left to refuse."""
        self.known = dict(self.known)


class _GuardedNames(dict[str, None]):
    """A run's admitted names, which a thread or task of an ended run is never told it knows:
    its every call then goes to ``_admit``. Costs a Python call per name; used only while such
    a thread or task lives (``nbtrack._threads``)."""

    __slots__ = ("loggers", "tasks")

    def __init__(self, names: dict[str, None], loggers: frozenset[object]) -> None:
        super().__init__(names)
        self.loggers = loggers  # thread idents and tasks
        self.tasks = any(not isinstance(logger, int) for logger in loggers)

    def __contains__(self, name: object) -> bool:
        loggers = self.loggers
        return (
            _get_ident() not in loggers
            and not (self.tasks and current_task() in loggers)
            and dict.__contains__(self, name)
        )


# The buffer of the running tracked cell, set by nbtrack._registry; None outside one.
active: Buffer | None = None

# Called by ``log`` when no buffer is active: it finds the run of the tracked cell that started
# this process (a forked or spawned child, a torch.distributed rank) and returns the buffer to
# log into, or raises NoActiveRunError. Set by ``nbtrack/__init__`` (``nbtrack.journal.child``
# does the work), so that this module imports nothing above it.
outside_run: Callable[[str], Buffer] | None = None


def log(metrics: Mapping[str, Any] | None = None, /, **values: Any) -> None:
    """Log metric values for the current tracked cell.

    ``nbtrack.log(loss=loss, acc=acc)``, or a mapping, which is the way to write names that are
    not Python identifiers: ``nbtrack.log({"train/loss": loss, "val/acc": acc}, step=epoch)``.
    Both forms take the same fast path.

    Values may be Python numbers, numpy scalars or one-element torch tensors. A CPU tensor is
    read at once (there is no device to wait for); a tensor on a GPU is copied on the device
    (queued, without its autograd graph) and read later by the sender thread, so logging never
    forces a device synchronisation and the point keeps the value the tensor had at the call.
    NaN and inf are stored as they are. The keyword ``step`` (an integer) is the step of every
    value of the call; it defaults to a per-metric counter starting at 0.

    Raises:
        NoActiveRunError: outside a ``%%track`` cell.
        TypeError: a value is not a number, or a step is not an integer from 0 to 2**63 - 1
            (the message names the metric and the fix).
        ValueError: a metric name MLflow would reject, a name given twice, or a finite number
            beyond float64's range (``10**400``), which would otherwise be stored as inf.
    """
    # ``step`` is read from the keywords rather than declared keyword-only: CPython compares
    # every keyword of a call with each declared keyword-only name, as strings, which inside a
    # training loop (cold caches) cost about 0.4 µs a call of three keywords; the pop costs
    # less (benchmarks/README.md, bench_loop). ``log.__signature__`` below shows ``step`` as
    # the keyword-only argument it is.
    buffer = active
    if buffer is None:
        buffer = _outside_run()
        if buffer is None:  # a thread of a run that has ended: the call is dropped
            return
    step = values.pop("step") if "step" in values else None  # (a test costs less than a call)
    if metrics is not None:
        values = (
            (metrics if _references(metrics) == _UNSHARED else metrics.copy())
            if type(metrics) is dict and not values
            else _merged(metrics, values)
        )
    # The usual call: names seen before, floats and CPU tensors (read now: there is no device to
    # wait for, and it frees the autograd graph at once). One pass, as few steps as possible:
    # inside a training loop every step of this function runs from a cold cache. Anything
    # else goes to _admit, which checks it and says what is wrong. (Iterating the keys costs
    # less than items(), which makes a view and a tuple per value.)
    known = buffer.known
    for key in values:
        value = values[key]
        kind = type(value)
        if kind is float:
            if key in known:
                continue
        elif kind is _tensor_type and key in known and value.is_cpu:
            try:  # (free in Python 3.11+ unless it raises)
                number = value.item()
            except RuntimeError:  # more than one element: _admit says so clearly
                number = None
            if type(number) is float:
                values[key] = number  # a new value for a present key: safe while iterating
                continue
        if not _admit(buffer, values):
            return
        break
    if step is not None and (type(step) is not int or not 0 <= step <= MAX_STEP):
        step = checked_step(step)
    calls = buffer.calls
    calls.append((step, _now(), values))
    if len(calls) > buffer.limit and buffer.overflow is not None:
        buffer.overflow()


def _log_signature(
    metrics: Mapping[str, Any] | None = None, /, *, step: int | None = None, **values: Any
) -> None:
    """What ``log`` takes, as help() and Jupyter show it."""


log.__signature__ = inspect.signature(_log_signature)  # type: ignore[attr-defined]


def take(buffer: Buffer) -> tuple[list[tuple[int | None, float, dict[str, Any]]], list[Any]]:
    """Remove and return what ``buffer`` holds: (calls, pending), each in call order."""
    calls, pending = buffer.calls, buffer.pending
    n_calls, n_pending = len(calls), len(pending)
    # Read, then removed with one operation each: whatever `log` appends meanwhile lands after
    # these indexes and stays for the next take.
    taken_calls = calls[:n_calls]
    del calls[:n_calls]
    taken_pending = pending[:n_pending]
    del pending[:n_pending]
    return taken_calls, taken_pending


def _outside_run() -> Buffer | None:
    """Where a call outside a tracked cell goes: nowhere from a thread of a run that has ended
    (see nbtrack._threads: dropped with one warning); in a process a tracked cell started, that
    cell's run (``outside_run``); anywhere else NoActiveRunError."""
    if ended_runs.refuse("nbtrack.log"):
        return None
    if outside_run is None:
        raise NoActiveRunError("log")
    return outside_run("log")


# torch.Tensor, once a tensor was logged: an identity check then needs no torch import.
_tensor_type: type | None = None


def _merged(metrics: object, values: dict[str, Any]) -> dict[str, Any]:
    """The positional mapping and the keywords as one new dict (a copy: the caller may reuse
    and change its dict after the call)."""
    if not isinstance(metrics, Mapping):
        msg = (
            f"nbtrack.log takes metric values as keywords or as a mapping of names to values, "
            f"got {type(metrics).__name__} {metrics!r:.80}; e.g. nbtrack.log(loss=loss) or "
            "nbtrack.log({'train/loss': loss})"
        )
        raise TypeError(msg)
    if not values:
        return dict(metrics)
    both = values.keys() & metrics.keys()
    if both:
        msg = f"metric {sorted(both)[0]!r} was given twice, in the mapping and as a keyword"
        raise ValueError(msg)
    return {**metrics, **values}


def _admit(buffer: Buffer, values: dict[str, Any]) -> bool:
    """Check names seen for the first time and make every value a float, in place: read CPU
    tensors, keep device tensors (without their graph) for the sender, reject what is not a
    real number. Replacing values while iterating is safe: the dict's size never changes.

    False: the call comes from a thread or an asyncio task of a run that has ended, and is
    dropped (the run is guarded from now on, so that its later calls come here too)."""
    global _tensor_type  # noqa: PLW0603 - a cache of one type object
    if not _admit_caller(buffer):
        return False
    known = buffer.known
    for key, value in values.items():
        if key not in known:
            check_key(key, "metric")
            _note_task(buffer)
        kind = type(value)
        if kind is _tensor_type or _is_tensor(value):
            _tensor_type = sys.modules["torch"].Tensor
            number = values[key] = _tensor_value(key, value)
            if type(number) is not float:
                buffer.on_device = True  # the sender reads this run's device values
        elif kind is not float:
            values[key] = metric_value(key, value)
        if key not in known:
            if key in buffer.watched:
                buffer.limit = 0  # log() hands over to overflow() right after its append
            else:
                known[key] = None
    return True


def _admit_caller(buffer: Buffer) -> bool:
    """False for a thread or task of an ended run (told once, see nbtrack._threads); else True,
    and a thread other than the cell's is known to log into the run."""
    ident = _get_ident()
    other_thread = ident != buffer.owner
    if (other_thread or ended_runs.has_tasks) and ended_runs.refuse("nbtrack.log"):
        if not buffer.guarded:
            buffer.guard(ended_runs.loggers())
        return False
    if other_thread:
        buffer.helpers.add(ident)
    return True


def _note_task(buffer: Buffer) -> None:
    """A name new to the run: logged by an asyncio task other than the cell's own, that task is
    known to log into the run (looked for once per new name, not per call)."""
    if _get_ident() == buffer.owner:
        task = current_task()
        if task is not None and task is not buffer.cell_task:
            buffer.helpers.add(task)


def _is_tensor(value: object) -> bool:
    """A torch tensor, subclasses (``nn.Parameter``) included; no torch import: a tensor
    exists only where torch was imported."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def log_into(buffer: Buffer, values: dict[str, Any], step: int) -> None:
    """Log ``values`` at ``step`` into ``buffer``, which need not be the active run's: a run
    that no cell code logs into (a sweep's parent), from the thread that runs the cell."""
    checked = {}
    for key, value in values.items():
        check_key(key, "metric")
        checked[key] = value if type(value) is float else metric_value(key, value)
    buffer.calls.append((checked_step(step), _now(), checked))


def _tensor_value(key: str, tensor: Any) -> Any:
    if tensor.is_cpu:
        # Nothing to wait for: reading now is cheaper than keeping the tensor (and frees its
        # autograd graph at once).
        try:
            value = tensor.item()
        except RuntimeError:  # more than one element
            value = None
        if type(value) is float:
            return value
        if type(value) in (int, bool):
            return float(value)
    elif tensor.numel() == 1 and not tensor.is_complex():
        # On a device: reading would wait for it, so the sender reads it later. What it keeps
        # is a copy, queued on the device after the work that computed the value (no wait):
        # the caller may change the tensor in place meanwhile (a running total), and the
        # point must hold the value at the call. Detached, so that no autograd graph is kept.
        return tensor.detach().clone()
    msg = (
        f"metric {key!r} is a tensor of shape {tuple(tensor.shape)} and dtype {tensor.dtype}; "
        "log a single real number, e.g. loss.mean() or a one-element tensor"
    )
    raise TypeError(msg)
