"""The upload keeps as many log_batch requests in flight as the store's latency hides: one into
a store that answers at once (SQLite), several into one that makes it wait (a server)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator

import pytest

from nbtrack.journal.inflight import MAX_IN_FLIGHT, InFlight


def _busy(seconds: float) -> None:
    end = time.thread_time() + seconds  # this thread's: each request computes its own share
    while time.thread_time() < end:
        pass


def test_a_store_that_makes_each_request_wait_gets_several_in_flight() -> None:
    inflight = InFlight()
    running = 0
    most = 0
    lock = threading.Lock()

    def send(chunk: int) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        _busy(0.002)
        time.sleep(0.05)  # the server's answer: waiting, not computing
        with lock:
            running -= 1

    sent: list[int] = []
    for _ in range(5):
        inflight.send(lambda chunk: (send(chunk), sent.append(chunk)), list(range(8)))
    assert inflight.width == MAX_IN_FLIGHT
    assert most > 1
    assert sorted(sent) == sorted(list(range(8)) * 5)  # every chunk exactly once


# Serial: waiting for a core reads as the store's wait (see inflight.py), and with two tests
# beside it on two cores a quick store's lone request can wait for a core four times its CPU.
@pytest.mark.serial
def test_a_store_that_answers_at_once_gets_fewer_requests_in_flight() -> None:
    # Measured side by side: on a busy machine a request that only computes also waits for a
    # core, so its width may exceed 1, never the waiting store's.
    quick, waiting = InFlight(), InFlight()
    for _ in range(5):
        quick.send(lambda _chunk: _busy(0.005), list(range(4)))
        waiting.send(lambda _chunk: (_busy(0.002), time.sleep(0.05)), list(range(4)))
    assert quick.width < waiting.width == MAX_IN_FLIGHT


def test_a_local_store_gets_one_request_at_a_time_whatever_it_waits() -> None:
    inflight = InFlight(single=True)
    inflight.send(lambda _chunk: time.sleep(0.05), list(range(4)))
    assert inflight.width == 1


def test_the_first_error_is_raised() -> None:
    inflight = InFlight()

    def send(chunk: int) -> None:
        time.sleep(0.01)
        if chunk == 2:
            raise ConnectionError("store away")

    inflight.send(lambda _chunk: time.sleep(0.05), [0, 1])  # learn that the store waits
    with pytest.raises(ConnectionError, match="store away"):
        inflight.send(send, [0, 1, 2, 3])


@pytest.fixture
def interleaved() -> Iterator[None]:
    # A store's client hands the interpreter over often (its socket and SQLite calls release
    # the GIL), so requests in flight together interleave finely: each waits ~width times its
    # CPU. Python's default 5 ms switch interval would let a 5 ms request finish in one turn.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)
    yield
    sys.setswitchinterval(interval)


@pytest.mark.serial
@pytest.mark.usefixtures("interleaved")
def test_a_store_that_became_quick_drops_back_to_fewer_requests_in_flight() -> None:
    # Requests in flight together wait for each other's share of the interpreter, which must
    # not read as the store's latency: a store that once was slow would keep several in flight.
    # Compared in the same run with one that was always quick, give or take one: on a busy
    # machine each lone request waits for a core a little more or less.
    became_quick, always_quick = InFlight(probe_seconds=0.0), InFlight(probe_seconds=0.0)
    for _ in range(5):
        became_quick.send(lambda _chunk: (_busy(0.002), time.sleep(0.05)), list(range(4)))
    assert became_quick.width == MAX_IN_FLIGHT
    for _ in range(20):
        became_quick.send(lambda _chunk: _busy(0.005), list(range(4)))
        always_quick.send(lambda _chunk: _busy(0.005), list(range(4)))
    assert became_quick.width <= always_quick.width + 1 < MAX_IN_FLIGHT
