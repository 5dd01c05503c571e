"""Holding a kernel interrupt back while a run is half set up or half ended."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["interrupts_deferred"]


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold a kernel interrupt (SIGINT) back while the block runs; it is raised on exit.

    The handler is swapped rather than the signal masked: Python runs signal handlers in the
    main thread whichever thread the operating system delivered the signal to, so a mask on
    the main thread alone lets an interrupt through.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pending:
            if callable(previous):
                previous(signal.SIGINT, None)  # ipykernel's handler raises KeyboardInterrupt
            elif previous == signal.SIG_DFL:
                raise KeyboardInterrupt
