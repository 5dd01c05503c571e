"""Which run the points a thread logs belong to.

The rule: a point belongs to the run that was active where and when it was logged. The thread
that runs a tracked cell logs into its run. A thread started while a run is active belongs to
that run: once the run has ended, what it logs is refused, with one warning per thread (no
exception, which would stop the thread), and never moved into a later run. A thread started
outside any run logs into whichever run is active when it logs.

None of this costs the usual call anything. ``nbtrack.log`` checks nothing about threads on its
fast path; a thread of an ended run is caught where checking is cheap:

- between runs, where every call takes the error path anyway;
- in ``_buffer._admit``, which every call with a name the run has not seen yet goes through
  (a thread of an ended run never gets its names admitted);
- by a *guard* on a run's names (``_buffer.Buffer.guard``), which sends every call of a thread
  of an ended run to ``_admit``. It costs the logging loop about a Python call per ``log``, so
  a run is guarded only while a thread of an ended run that logged is alive (typically none:
  threads started by libraries that never log do not count), and the guard is lifted as soon
  as those threads are gone.

A thread is known to have logged once ``_admit`` saw it, or it logged between runs. One that
only ever logs names the cell's own code logged first, and never between runs, is not seen:
its points would land in a later run if it outlived its own one.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Collection

from nbtrack.errors import NbtrackWarning

__all__ = [
    "ThreadsOfEndedRuns",
    "ended_runs",
]

# Threads nbtrack starts itself (sender, live view timers) never log.
_OWN_THREAD_PREFIX = "nbtrack-"


class ThreadsOfEndedRuns:
    """Threads started during a run that has ended, still alive, with the run they belong to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # ident -> (thread, run name); the Thread object tells a reused ident apart.
        self._threads: dict[int, tuple[threading.Thread, str]] = {}
        self._logged: set[threading.Thread] = set()
        self._warned: set[threading.Thread] = set()

    @staticmethod
    def snapshot() -> frozenset[threading.Thread]:
        """The threads alive now (taken when a run starts)."""
        return frozenset(threading.enumerate())

    def run_ended(
        self, run_name: str, before: Collection[threading.Thread], logged: Collection[int]
    ) -> None:
        """A run ended: threads started since ``before`` and still alive belong to it;
        ``logged``: idents of threads seen logging into it."""
        with self._lock:
            for thread in threading.enumerate():
                if thread in before or thread.name.startswith(_OWN_THREAD_PREFIX):
                    continue
                if thread.ident is not None:
                    self._threads[thread.ident] = (thread, run_name)
                    if thread.ident in logged:
                        self._logged.add(thread)
            self._prune()

    def run_of_current_thread(self) -> str | None:
        """The ended run the calling thread belongs to, or None."""
        found = self._threads.get(threading.get_ident())
        if found is None or found[0] is not threading.current_thread():
            return None
        return found[1]

    def refuse(self, what: str) -> bool:
        """Whether the calling thread belongs to an ended run; if so, say once that its
        points are dropped (``what`` names the call), and remember it logs."""
        run_name = self.run_of_current_thread()
        if run_name is None:
            return False
        thread = threading.current_thread()
        with self._lock:
            self._logged.add(thread)
            first = thread not in self._warned
            self._warned.add(thread)
        if first:
            warnings.warn(
                f"nbtrack: thread {thread.name!r} was started in the tracked cell of run "
                f"{run_name!r}, which has ended; what it logs ({what} and any later call) is "
                "dropped, not moved into another run: a point belongs to the run that was "
                "active where and when it was logged. Stop or join the thread (shut a thread "
                "pool down) before its cell ends.",
                NbtrackWarning,
                stacklevel=4,
            )
        return True

    def loggers(self) -> frozenset[int]:
        """Idents of live threads of ended runs that were seen logging: what a new run must
        guard against (empty in the usual case)."""
        with self._lock:
            self._prune()
            return frozenset(t.ident for t in self._logged if t.ident is not None)

    def _prune(self) -> None:
        for ident, (thread, _) in list(self._threads.items()):
            if not thread.is_alive():
                del self._threads[ident]
                self._logged.discard(thread)
                self._warned.discard(thread)


ended_runs = ThreadsOfEndedRuns()


def _after_fork_in_child() -> None:
    # A forked child has only the thread that forked, and none of its parent's runs: it starts
    # with a clean slate (and a lock that no vanished thread can hold). Reset in place: other
    # modules hold this very object.
    ended_runs.__init__()  # type: ignore[misc]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
