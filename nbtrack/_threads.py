"""Which run the points a thread or an asyncio task logs belong to.

The rule: a point belongs to the run that was active where and when it was logged. The thread
that runs a tracked cell logs into its run. A thread (or an asyncio task) started while a run is
active belongs to that run: once the run has ended, what it logs is refused, with one warning
per thread or task (no exception, which would stop it), and never moved into a later run. One
started outside any run logs into whichever run is active when it logs. A task runs in the
kernel's own thread, between and during later cells (a cell that awaits lets it run), so it is
told apart from the cell's code by ``asyncio.current_task()``, not by its thread.

None of this costs the usual call anything. ``nbtrack.log`` checks nothing about threads or
tasks on its fast path; one of an ended run is caught where checking is cheap:

- between runs, where every call takes the error path anyway;
- in ``_buffer._admit``, which every call with a name the run has not seen yet goes through
  (a thread or task of an ended run never gets its names admitted);
- by a *guard* on a run's names (``_buffer.Buffer.guard``), which sends every call of a thread
  or task of an ended run to ``_admit``. It costs the logging loop about a Python call per
  ``log``, so a run is guarded only while one of an ended run that logged is alive (typically
  none: threads and tasks started by libraries that never log do not count), and the guard is
  lifted as soon as those are gone.

A thread or task is known to have logged once ``_admit`` saw it, or it logged between runs.
One that only ever logs names the cell's own code logged first, and never between runs, is not
seen: its points would land in a later run if it outlived its own one.

Threads are kept by their ident (what ``log`` can read cheaply), tasks as themselves.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import Collection
from typing import Any

from nbtrack.errors import NbtrackWarning

__all__ = [
    "ThreadsOfEndedRuns",
    "current_task",
    "ended_runs",
]

# Threads nbtrack starts itself (sender, live view timers) never log.
_OWN_THREAD_PREFIX = "nbtrack-"


def _asyncio_here() -> Any:
    """asyncio, where an event loop runs in the calling thread; else None (no import: a task
    exists only where asyncio was imported)."""
    asyncio = sys.modules.get("asyncio")
    return None if asyncio is None or asyncio._get_running_loop() is None else asyncio


def current_task() -> Any:
    """The asyncio task running in the calling thread, or None."""
    asyncio = _asyncio_here()
    return None if asyncio is None else asyncio.current_task()


class ThreadsOfEndedRuns:
    """Threads and asyncio tasks started during a run that has ended, still alive, with the run
    they belong to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # ident -> (thread, run name); the Thread object tells a reused ident apart.
        self._threads: dict[int, tuple[threading.Thread, str]] = {}
        self._tasks: dict[Any, str] = {}  # task -> run name
        # Threads and tasks seen logging, and those told that their points are dropped.
        self._logged: set[Any] = set()
        self._warned: set[Any] = set()

    @property
    def has_tasks(self) -> bool:
        """Whether a task of an ended run may still log (then ``_admit`` asks ``refuse``)."""
        return bool(self._tasks)

    @staticmethod
    def snapshot() -> frozenset[Any]:
        """The threads alive and the tasks pending now (taken when a run starts)."""
        return frozenset(threading.enumerate()) | _pending_tasks()

    def run_ended(self, run_name: str, before: Collection[Any], logged: Collection[Any]) -> None:
        """A run ended: threads and tasks started since ``before`` and still alive belong to
        it; ``logged``: those seen logging into it (threads by ident, tasks as themselves)."""
        with self._lock:
            for thread in threading.enumerate():
                if thread in before or thread.name.startswith(_OWN_THREAD_PREFIX):
                    continue
                if thread.ident is not None:
                    self._threads[thread.ident] = (thread, run_name)
                    if thread.ident in logged:
                        self._logged.add(thread)
            for task in _pending_tasks().difference(before):
                self._tasks[task] = run_name
                if task in logged:
                    self._logged.add(task)
            self._prune()

    def cell_started(self) -> None:
        """The calling task runs a tracked cell: whatever started it (a kernel may run a cell in
        a task it started while an earlier cell ran), it is not a task of an ended run."""
        task = current_task()
        if task is not None and task in self._tasks:
            with self._lock:
                self._tasks.pop(task, None)
                self._logged.discard(task)
                self._warned.discard(task)

    def _of_caller(self) -> tuple[Any, str] | None:
        """The thread or task of an ended run that is calling, with that run's name, or None."""
        found = self._threads.get(threading.get_ident())
        if found is not None and found[0] is threading.current_thread():
            return found
        if self._tasks:
            task = current_task()
            run_name = self._tasks.get(task)
            if run_name is not None:
                return task, run_name
        return None

    def refuse(self, what: str) -> bool:
        """Whether the calling thread or task belongs to an ended run; if so, say once that its
        points are dropped (``what`` names the call), and remember it logs."""
        found = self._of_caller()
        if found is None:
            return False
        worker, run_name = found
        with self._lock:
            self._logged.add(worker)
            first = worker not in self._warned
            self._warned.add(worker)
        if first:
            if isinstance(worker, threading.Thread):
                started = f"thread {worker.name!r}"
                fix = "Stop or join the thread (shut a thread pool down) before its cell ends."
            else:
                started = f"asyncio task {worker.get_name()!r}"
                fix = "Cancel or await the task before its cell ends."
            warnings.warn(
                f"nbtrack: {started} was started in the tracked cell of run {run_name!r}, which "
                f"has ended; what it logs ({what} and any later call) is dropped, not moved "
                "into another run: a point belongs to the run that was active where and when it "
                f"was logged. {fix}",
                NbtrackWarning,
                stacklevel=4,
            )
        return True

    def loggers(self) -> frozenset[Any]:
        """Live threads (by ident) and pending tasks of ended runs that were seen logging: what
        a new run must guard against (empty in the usual case)."""
        with self._lock:
            self._prune()
            threads = {w for w in self._logged if isinstance(w, threading.Thread)}
            return frozenset(self._logged - threads) | {
                thread.ident for thread in threads if thread.ident is not None
            }

    def _prune(self) -> None:
        for ident, (thread, _) in list(self._threads.items()):
            if not thread.is_alive():
                del self._threads[ident]
                self._logged.discard(thread)
                self._warned.discard(thread)
        for task in [task for task in self._tasks if task.done()]:
            del self._tasks[task]
            self._logged.discard(task)
            self._warned.discard(task)


def _pending_tasks() -> frozenset[Any]:
    """The tasks of the event loop running in the calling thread (none without one)."""
    asyncio = _asyncio_here()
    return frozenset() if asyncio is None else frozenset(asyncio.all_tasks())


ended_runs = ThreadsOfEndedRuns()


def _after_fork_in_child() -> None:
    # A forked child has only the thread that forked, and none of its parent's runs: it starts
    # with a clean slate (and a lock that no vanished thread can hold). Reset in place: other
    # modules hold this very object.
    ended_runs.__init__()  # type: ignore[misc]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
