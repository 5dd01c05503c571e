"""Which run is being tracked now, and which ended runs still have data on its way.

One kernel tracks one cell at a time. The tracked run is registered here when its cell starts
(``activate``, which also points ``nbtrack.log`` at its buffer) and unregistered when the cell
ends (``deactivate``); it stays in the draining list until the sender has delivered everything
and its record is final (``forget``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from nbtrack import _buffer
from nbtrack._buffer import Buffer
from nbtrack._model import Batch, Run
from nbtrack._threads import current_task, ended_runs

__all__ = [
    "Output",
    "TrackedRun",
    "activate",
    "current",
    "deactivate",
    "draining",
    "forget",
    "keep",
    "review_guard",
    "serve",
]


class Output(Protocol):
    """Where the sender delivers a run's batches: its journal, and its live view."""

    def update(self, run: Run, batch: Batch) -> None:
        """New data; ``run.curves`` already include the batch's metrics."""


@dataclass(eq=False)
class TrackedRun:
    """A run being tracked in this kernel: its data, its buffer and where batches go.

    ``journal`` makes every batch durable before anything else sees it; ``views`` draw it.
    ``poll`` is called by the sender at each wake: it brings the run's identity and sync state
    up to date, and returns True once the cell ended and nothing more will change (the run is
    then forgotten).
    """

    run: Run
    buffer: Buffer
    journal: Any
    views: list[Output] = field(default_factory=list)
    poll: Callable[[], bool] | None = None
    # Set by the kernel when the cell uses MLflow: the pending import hook, and whether the run
    # was made MLflow's active run (to be released at the cell's end).
    import_watch: object = None
    mlflow_attached: bool = False
    # The cell execution (IPython's ExecutionInfo) that started the run: only its end ends the
    # run, not the end of a cell it ran itself. None outside IPython's cell events.
    cell: object = None
    # The threads alive and asyncio tasks pending when the run started: those started later
    # belong to it (_threads).
    started_before: frozenset[Any] = frozenset()
    # Things to undo when the cell ends (hooks a watched model carries, a patched framework),
    # run last-registered first by ``kernel/cell.end`` while the run is still the active one.
    at_end: list[Callable[[], object]] = field(default_factory=list)
    # The system metrics samples the run follows (``kernel/system.SystemSamples``), if any.
    system: Any = None
    # Held by whoever turns the buffer into batches, so that the final drain at cell end and
    # the sender thread never interleave.
    drain_lock: threading.Lock = field(default_factory=threading.Lock)


_lock = threading.Lock()
_current: TrackedRun | None = None
_draining: list[TrackedRun] = []


def current() -> TrackedRun | None:
    """The run of the tracked cell being executed, or None."""
    return _current


def activate(tracked: TrackedRun) -> None:
    """Make ``tracked`` the run that ``nbtrack.log`` logs into, from the calling thread (the
    cell's) and from threads started from now on; threads of ended runs that still log are
    kept out of it (see nbtrack._threads)."""
    global _current  # noqa: PLW0603 - the registry is module state by design: one kernel, one active run
    buffer = tracked.buffer
    buffer.owner = threading.get_ident()
    buffer.cell_task = current_task()
    ended_runs.cell_started()
    tracked.started_before = ended_runs.snapshot()
    loggers = ended_runs.loggers()
    if loggers:
        buffer.guard(loggers)
    with _lock:
        _current = tracked
        _draining.append(tracked)
        _buffer.active = buffer


def keep(tracked: TrackedRun) -> None:
    """Drain and follow ``tracked`` like any run, without making it the one ``nbtrack.log``
    logs into: a run that no cell code logs into (a sweep's parent)."""
    with _lock:
        _draining.append(tracked)


def deactivate(tracked: TrackedRun) -> None:
    """The run's cell ended: nothing more is logged into it; threads started during it now
    belong to an ended run."""
    global _current  # noqa: PLW0603
    with _lock:
        if _current is not tracked:
            return
        _current = None
        _buffer.active = None
    ended_runs.run_ended(tracked.run.run_name, tracked.started_before, tracked.buffer.helpers)


def review_guard(tracked: TrackedRun) -> None:
    """Lift the run's guard once no thread of an ended run that logs is alive any more, so
    that its calls cost no more than usual (called by the sender at each wake)."""
    buffer = tracked.buffer
    if buffer.guarded and not ended_runs.loggers():
        buffer.unguard()


def draining() -> list[TrackedRun]:
    """Runs whose data or record is not final yet, oldest first."""
    with _lock:
        return list(_draining)


def forget(tracked: TrackedRun) -> None:
    with _lock:
        if tracked in _draining:
            _draining.remove(tracked)


def serve(tracked: TrackedRun) -> None:
    """Log into ``tracked`` without it being this process's current run: a process started by
    a tracked cell (``nbtrack.journal.child``) logs into the cell's run through a journal of
    its own, which the sender drains like any other."""
    with _lock:
        _draining.append(tracked)
        _buffer.active = tracked.buffer


def _after_fork_in_child() -> None:
    """A forked child starts with none of its parent's runs: their sender thread did not survive
    the fork, and their journals belong to the parent (``nbtrack.journal.child`` gives the child
    a journal of its own). The lock may have been held by a thread that is gone."""
    global _current, _draining, _lock  # noqa: PLW0603
    _lock = threading.Lock()
    _current = None
    _draining = []
    _buffer.active = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
