"""The extension's threads for blocking calls, shared by every store, a few at a time per store.

A call that outlives its request's timeout goes on in its thread (a thread cannot be stopped),
so a store that never answers would, refresh after refresh, take every thread of the pool and
block the API for every notebook of the server. Here a call keeps its store's slot until it
returns, however long after its request gave up: one store holds at most ``per_store``
threads, and further calls for it wait for a slot on the event loop (no thread, no queue),
giving up at their own timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class StoreBusy(Exception):
    """Earlier calls for the same store still hold its slots: this one was not started."""


class StorePool:
    """``threads`` threads; at most ``per_store`` of them for calls of any one store."""

    def __init__(self, threads: int, per_store: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="nbtrack")
        self._per_store = per_store
        # Only used on the event loop. One entry per store asked about: a handful per server.
        self._slots: dict[str, asyncio.Semaphore] = {}

    async def run(self, store: str, func: Callable[[], T], timeout: float) -> T:
        """``func()`` in a thread, once ``store`` has a free slot.

        Raises :class:`StoreBusy` when no slot frees within ``timeout`` seconds, and
        ``asyncio.TimeoutError`` when the call does not return within what is left of them (it
        goes on in its thread, holding its slot until it returns).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        slots = self._slots.setdefault(store, asyncio.Semaphore(self._per_store))
        try:
            await asyncio.wait_for(slots.acquire(), timeout)
        except asyncio.TimeoutError:
            raise StoreBusy from None
        try:
            work = self._executor.submit(func)
        except BaseException:
            slots.release()
            raise
        # Released when the call ends, in its thread (or at once if it is cancelled unstarted).
        work.add_done_callback(functools.partial(_release, loop, slots))
        left = max(0.0, deadline - loop.time())
        return await asyncio.wait_for(asyncio.wrap_future(work), left)

    def shutdown(self) -> None:
        """Drop the calls not started yet; those running end on their own."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def _release(loop: asyncio.AbstractEventLoop, slots: asyncio.Semaphore, _: Future[object]) -> None:
    # The semaphore belongs to the event loop; a closed loop means the server is stopping.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(slots.release)
