"""How many ``log_batch`` requests the upload keeps in flight: as many as the store's speed asks.

A batch of 1000 points costs the sync process some CPU to build and send (~30-100 µs a point),
and then waits for the store to answer. Into an embedded SQLite file there is no wait (and one
writer at a time is all SQLite takes); against a tracking server most of a request is waiting,
on the network and on the server, which a single request at a time leaves idle: the upload
then keeps several batches in flight, as many times as one request's wait is longer than its
CPU (``latency // cpu``), from 1 to ``MAX_IN_FLIGHT``. A local store (SQLite: one writer at a
time) always gets one.

Latency and CPU are measured on requests sent alone. Requests in flight together share one
interpreter: each also waits while the others compute, so its wall time says as much about
how many were in flight as about the store, and a store that answers at once would read as
slow for as long as several requests were in flight (it would never get back to one). So while
several are in flight, the first request of a send goes alone every ``PROBE_SECONDS``: a
server that slows down under load gets more requests in flight, up to the bound, and one that
answers at once gets one. Time a request waits for a core counts as waiting too (only the
kernel could tell them apart, and few expose it): on a machine busier than its cores, a quick
store may get a second request in flight. Batches in flight together are acknowledged
together, once all of them are stored; if one fails they are all sent again, which the store
takes without duplicates (it ignores a point it already has, same key, step, time and value).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["MAX_IN_FLIGHT", "PROBE_SECONDS", "InFlight"]

MAX_IN_FLIGHT = 4
# A lone request costs one round of the others' parallelism: once in 5 s is a few percent of
# a slow store's throughput, and brings a store that became quick back to one request in ~30 s.
PROBE_SECONDS = 5.0
_SMOOTHING = 0.3


class InFlight:
    """Sends chunks with ``send(chunk)``, several at once where the store's latency allows.
    Used by one thread (the upload's); the requests it keeps in flight run in its own pool."""

    def __init__(self, single: bool = False, probe_seconds: float = PROBE_SECONDS) -> None:
        self.single = single
        self.probe_seconds = probe_seconds
        self._latency = 0.0  # seconds a request sent alone takes, smoothed
        self._cpu = 0.0  # CPU seconds it costs this process, smoothed
        self._probed = -float("inf")  # perf_counter() when the last lone request started
        self._pool: ThreadPoolExecutor | None = None

    @property
    def width(self) -> int:
        """Requests to keep in flight now."""
        if self.single or self._cpu <= 0:
            return 1
        return max(1, min(MAX_IN_FLIGHT, int(self._latency / self._cpu)))

    def send(self, send: Callable[[Any], None], chunks: Sequence[Any]) -> None:
        """``send(chunk)`` for every chunk; returns once all are sent, raises the first error."""
        rest = list(chunks)
        if not rest:
            return
        if self.width == 1 or time.perf_counter() - self._probed >= self.probe_seconds:
            self._alone(send, rest.pop(0))
        if self.width == 1:
            for chunk in rest:
                self._alone(send, chunk)
        elif rest:
            pool = self._executor()
            for future in [pool.submit(send, chunk) for chunk in rest]:
                future.result()

    def _alone(self, send: Callable[[Any], None], chunk: Any) -> None:
        self._probed = start = time.perf_counter()
        cpu = time.thread_time()  # this thread's: MLflow's client sends in the calling thread
        send(chunk)
        self._latency = _smoothed(self._latency, time.perf_counter() - start)
        self._cpu = _smoothed(self._cpu, time.thread_time() - cpu)

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(MAX_IN_FLIGHT, thread_name_prefix="nbtrack-upload")
        return self._pool


def _smoothed(mean: float, value: float) -> float:
    return mean + _SMOOTHING * (value - mean) if mean else value
