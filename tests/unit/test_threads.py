"""Which run a thread's points belong to: the run that was active where and when they were
logged. A thread started in a run that has ended is refused, with one warning, and never
feeds a later run; the usual single-threaded call pays nothing for this."""

from __future__ import annotations

import queue
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers.spies import Recorder

import nbtrack
from nbtrack import _registry, _sender
from nbtrack._buffer import Buffer
from nbtrack._model import Run
from nbtrack._registry import TrackedRun
from nbtrack.errors import NbtrackWarning, NoActiveRunError


def start(name: str) -> TrackedRun:
    tracked = TrackedRun(Run(name, "tests", "sqlite:///unused.db"), Buffer(), Recorder())
    _registry.activate(tracked)
    _registry.forget(tracked)  # drained by the test itself
    return tracked


def stop(tracked: TrackedRun) -> None:
    _registry.deactivate(tracked)


def logged(tracked: TrackedRun) -> dict[str, list[float]]:
    batch = _sender.drain(tracked)
    return {key: list(points.values) for key, points in batch.metrics.items()}


class Helper:
    """A thread of the user's that runs what it is given, one call at a time, and keeps
    going whatever a call raised (like a training or monitoring loop that catches errors)."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []
        self._calls: queue.Queue[Callable[[], object] | None] = queue.Queue()
        self._done: queue.Queue[None] = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="users-helper", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while (call := self._calls.get()) is not None:
            try:
                call()
            except Exception as error:  # noqa: BLE001 - counted, as a user's loop would
                self.errors.append(error)
            self._done.put(None)

    def do(self, call: Callable[[], object]) -> None:
        self._calls.put(call)
        self._done.get(timeout=10)

    def quit(self) -> None:
        self._calls.put(None)
        self.thread.join(timeout=10)


@pytest.fixture
def caught() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as found:
        warnings.simplefilter("always")
        yield found


def _ours(found: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in found if issubclass(w.category, NbtrackWarning)]


def test_a_thread_of_an_ended_run_feeds_no_later_run(caught: list[Any]) -> None:
    first = start("A")
    nbtrack.log(loss=1.0)
    helper = Helper()  # started while A runs: it belongs to A
    helper.do(lambda: nbtrack.log(bg=1.0))
    helper.do(lambda: nbtrack.log(loss=-1.0))
    stop(first)
    helper.do(lambda: nbtrack.log(bg=2.0))  # between runs
    helper.do(lambda: nbtrack.log_params(from_helper="x"))
    second = start("B")
    try:
        nbtrack.log(loss=2.0)
        # Both a name B knows (its own loss) and one it does not.
        helper.do(lambda: nbtrack.log(loss=-2.0))
        helper.do(lambda: nbtrack.log(bg=3.0))
        nbtrack.log(loss=3.0)
    finally:
        stop(second)
        helper.quit()
    assert logged(first) == {"loss": [1.0, -1.0], "bg": [1.0]}
    assert logged(second) == {"loss": [2.0, 3.0]}
    assert second.run.params == {}
    assert helper.errors == []
    (warning,) = _ours(caught)
    assert "'users-helper' was started in the tracked cell of run 'A', which has ended" in warning
    assert "dropped, not moved into another run" in warning


def test_a_thread_that_logged_only_between_runs_is_kept_out_of_the_next(
    caught: list[Any],
) -> None:
    first = start("A")
    helper = Helper()
    stop(first)
    helper.do(lambda: nbtrack.log(loss=-1.0))  # refused: now known to log
    second = start("B")
    try:
        nbtrack.log(loss=2.0)  # the name is admitted for the cell's own thread ...
        helper.do(lambda: nbtrack.log(loss=-2.0))  # ... and still refused for the helper
    finally:
        stop(second)
        helper.quit()
    assert logged(second) == {"loss": [2.0]}
    assert len(_ours(caught)) == 1


def test_the_usual_run_is_unguarded_and_a_guard_ends_with_the_thread(caught: list[Any]) -> None:
    plain = start("plain")
    stop(plain)
    # No thread of an ended run logs: the run's names are a plain dict, nothing is checked.
    assert type(plain.buffer.known) is dict

    first = start("A")
    helper = Helper()
    helper.do(lambda: nbtrack.log(bg=1.0))
    stop(first)
    second = start("B")
    try:
        assert second.buffer.guarded
        nbtrack.log(loss=1.0)
        helper.quit()
        _registry.review_guard(second)  # what the sender does at each wake
        assert not second.buffer.guarded
        assert type(second.buffer.known) is dict
        nbtrack.log(loss=2.0)
    finally:
        stop(second)
    assert logged(second) == {"loss": [1.0, 2.0]}
    assert _ours(caught) == []


def test_threads_from_outside_any_run_log_into_the_active_one(caught: list[Any]) -> None:
    helper = Helper()  # started before any run
    try:
        helper.do(lambda: nbtrack.log(bg=0.0))
        assert isinstance(helper.errors.pop(), NoActiveRunError)
        run = start("A")
        try:
            helper.do(lambda: nbtrack.log(bg=1.0))
            nbtrack.log(loss=1.0)
            helper.do(lambda: nbtrack.log(loss=2.0))
        finally:
            stop(run)
    finally:
        helper.quit()
    assert logged(run) == {"bg": [1.0], "loss": [1.0, 2.0]}
    assert helper.errors == []
    assert _ours(caught) == []
