"""Holding a kernel interrupt back while the main thread does what must not be cut in half.

Jupyter's interrupt is a SIGINT, which Python raises as a KeyboardInterrupt at almost any
bytecode of the main thread. nbtrack holds it back where that would leave state half changed:
a run half created or half ended (``kernel/cell.py``, ``sweep/runner.py``), a buffer taken
but not yet in the journal (``_sender.drain``), whose points would be lost.

The handler is swapped rather than the signal masked: Python runs signal handlers in the main
thread whichever thread the operating system delivered the signal to, so a mask on the main
thread alone lets an interrupt through. Outside the main thread, where handlers cannot be set
(and KeyboardInterrupt is never raised), nothing is held.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["HeldInterrupts", "interrupts_deferred"]


class HeldInterrupts:
    """What ``interrupts_deferred`` held back, and a window in which interrupts go through."""

    def __init__(self, previous: Any, active: bool) -> None:
        self.previous = previous
        self.pending = False
        self._active = active

    def _hold(self, _signum: int, _frame: object) -> None:
        self.pending = True

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """Let an interrupt through while the block runs (a wait the user may cut short)."""
        if not self._active:
            yield
            return
        signal.signal(signal.SIGINT, self.previous)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, self._hold)


@contextlib.contextmanager
def interrupts_deferred(*, raise_held: bool = True) -> Iterator[HeldInterrupts]:
    """Hold a kernel interrupt (SIGINT) back while the block runs.

    On exit a held interrupt is raised as the KeyboardInterrupt it would have been, or, with
    ``raise_held=False``, dropped (``HeldInterrupts.pending`` says it came): at a cell's end
    the cell's code is over, and an interrupt there only cuts the wait for the upload short.
    Blocks may nest: an inner one hands what it held to the outer one.
    """
    previous = (
        signal.getsignal(signal.SIGINT)
        if threading.current_thread() is threading.main_thread()
        else None
    )
    if previous is None:
        # Not the main thread, or a handler set outside Python (an embedding application),
        # which could not be put back: nothing is held.
        yield HeldInterrupts(None, active=False)
        return
    held = HeldInterrupts(previous, active=True)
    signal.signal(signal.SIGINT, held._hold)
    try:
        yield held
    finally:
        signal.signal(signal.SIGINT, previous)
    if held.pending and raise_held:
        if callable(previous):
            previous(signal.SIGINT, None)  # ipykernel's handler raises KeyboardInterrupt
        elif previous == signal.SIG_DFL:
            raise KeyboardInterrupt
