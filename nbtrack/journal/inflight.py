"""How many ``log_batch`` requests the upload keeps in flight: as many as the store's speed asks.

A batch of 1000 points costs the sync process some CPU to build and send (~30-100 µs a point),
and then waits for the store to answer. Into an embedded SQLite file there is no wait (and one
writer at a time is all SQLite takes); against a tracking server most of a request is waiting,
on the network and on the server, which a single request at a time leaves idle: the upload
then keeps several batches in flight, as many times as one request's wait is longer than its
CPU (``latency // cpu``), from 1 to ``MAX_IN_FLIGHT``. A local store (SQLite: one writer at a
time) always gets one. The measure follows the store: a server that
slows down under load gets more requests in flight, up to the bound, and one that answers at
once gets one. Batches in flight together are acknowledged together, once all of them are
stored; if one fails they are all sent again, which the store takes without duplicates (it
ignores a point it already has, same key, step, time and value).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["MAX_IN_FLIGHT", "InFlight"]

MAX_IN_FLIGHT = 4
_SMOOTHING = 0.3


class InFlight:
    """Sends chunks with ``send(chunk)``, several at once where the store's latency allows."""

    def __init__(self, single: bool = False) -> None:
        self.single = single
        self._latency = 0.0  # seconds one request takes, smoothed
        self._cpu = 0.0  # CPU seconds one request costs this process, smoothed
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def width(self) -> int:
        """Requests to keep in flight now."""
        if self.single or self._cpu <= 0:
            return 1
        return max(1, min(MAX_IN_FLIGHT, int(self._latency / self._cpu)))

    def send(self, send: Callable[[Any], None], chunks: Sequence[Any]) -> None:
        """``send(chunk)`` for every chunk; returns once all are sent, raises the first error."""
        width = self.width
        cpu = time.process_time()
        if width == 1 or len(chunks) == 1:
            for chunk in chunks:
                self._timed(send, chunk)
        else:
            pool = self._executor()
            for future in [pool.submit(self._timed, send, chunk) for chunk in chunks]:
                future.result()
        self._learn(cpu=(time.process_time() - cpu) / max(1, len(chunks)))

    def _timed(self, send: Callable[[Any], None], chunk: Any) -> None:
        start = time.perf_counter()
        send(chunk)
        self._learn(latency=time.perf_counter() - start)

    def _learn(self, latency: float | None = None, cpu: float | None = None) -> None:
        with self._lock:
            if latency is not None:
                self._latency += (
                    _SMOOTHING * (latency - self._latency) if self._latency else latency
                )
            if cpu is not None:
                self._cpu += _SMOOTHING * (cpu - self._cpu) if self._cpu else cpu

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(MAX_IN_FLIGHT, thread_name_prefix="nbtrack-upload")
        return self._pool
