"""Holding SIGINT back: what a held interrupt becomes, nested blocks, and the cases where
nothing can be held (another thread, a handler Python did not set)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import pytest

from nbtrack._interrupts import interrupts_deferred


@pytest.fixture(autouse=True)
def _python_handler() -> Iterator[None]:
    # What ipykernel installs while a cell runs.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_an_interrupt_is_raised_after_the_block_not_inside_it() -> None:
    done = []

    def block() -> None:
        with interrupts_deferred() as held:
            signal.raise_signal(signal.SIGINT)
            done.append(held.pending)

    with pytest.raises(KeyboardInterrupt):
        block()
    assert done == [True]  # the block ran to its end, with the interrupt held
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_interrupt_can_be_dropped_and_let_through_in_a_window() -> None:
    with interrupts_deferred(raise_held=False) as held:
        signal.raise_signal(signal.SIGINT)
        assert held.pending
        with pytest.raises(KeyboardInterrupt), held.interruptible():
            signal.raise_signal(signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) == held._hold
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_inner_block_hands_what_it_held_to_the_outer_one() -> None:
    with interrupts_deferred(raise_held=False) as outer:
        with interrupts_deferred() as inner:
            signal.raise_signal(signal.SIGINT)
        assert inner.pending
        assert outer.pending  # raised into the outer block's handler, which holds it
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_nothing_is_held_where_no_handler_can_be_put_back(monkeypatch) -> None:
    # Another thread cannot set handlers at all.
    seen = []
    thread = threading.Thread(target=lambda: seen.append(interrupts_deferred().__enter__()))
    thread.start()
    thread.join()
    assert not seen[0].pending
    # A handler installed outside Python reads as None and could not be restored: the block
    # leaves it alone rather than fail (``signal.signal(SIGINT, None)`` is a TypeError).
    monkeypatch.setattr(signal, "getsignal", lambda _signum: None)
    with pytest.raises(KeyboardInterrupt), interrupts_deferred():
        signal.raise_signal(signal.SIGINT)  # not held: raised at once
    monkeypatch.undo()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
