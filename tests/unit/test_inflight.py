"""The upload keeps as many log_batch requests in flight as the store's latency hides: one into
a store that answers at once (SQLite), several into one that makes it wait (a server)."""

from __future__ import annotations

import threading
import time

import pytest

from nbtrack.journal.inflight import MAX_IN_FLIGHT, InFlight


def _busy(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
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


def test_a_store_that_answers_at_once_gets_fewer_requests_in_flight() -> None:
    # Measured side by side: on a busy machine (the suite runs kernels meanwhile) a request that
    # only computes also waits for a core, so its width may exceed 1, never the waiting store's.
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
