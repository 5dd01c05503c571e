"""nbtrack's locks are waited for a bounded time: a process that holds one and hangs (or
another user's, in a folder they could reach) must not hang the sync process or `nbtrack ui`
forever. Each lock is held here through a second open of its file, as another process would
(``flock`` locks belong to an open file, not to a process)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from nbtrack import _platform, tracking
from nbtrack._files import open_private
from nbtrack.errors import UiStartError
from nbtrack.ui import registry


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(tmp_path / "state"))


def _outcome_while_held(
    lock_file: Path, take: Callable[[], AbstractContextManager[object]]
) -> BaseException | None:
    """What taking a lock does while another holds it: the error it raised, None if it got it.
    Fails if it is still waiting after 10 s."""
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            with take():
                outcome.append(None)
        except Exception as error:  # noqa: BLE001 - the outcome under test
            outcome.append(error)

    with _held(lock_file):
        waiter = threading.Thread(target=attempt, daemon=True)
        waiter.start()
        waiter.join(10)
        still_waiting = waiter.is_alive()
    waiter.join(10)  # released: a waiter without a time limit gets it now and ends
    assert not still_waiting, "still waiting for the lock after 10 s"
    return outcome[0]


class _held:
    """A lock held by someone else: a second open of its file, locked."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open_private(path)

    def __enter__(self) -> None:
        assert _platform.try_lock(self.handle)

    def __exit__(self, *_exc: object) -> None:
        _platform.unlock(self.handle)
        self.handle.close()


def test_a_held_store_creation_lock_fails_after_a_bounded_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracking, "_STORE_LOCK_WAIT_S", 0.3, raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    key = hashlib.sha256(uri.encode()).hexdigest()[:20]
    lock_file = tmp_path / "state" / "locks" / f"store-{key}.lock"
    error = _outcome_while_held(lock_file, lambda: tracking._store_creation_lock(uri))
    # The sync process retries store errors with backoff, telling the kernel why.
    assert isinstance(error, TimeoutError), error
    assert str(lock_file) in str(error)


def test_a_held_ui_lock_fails_after_a_bounded_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "LOCK_WAIT_S", 0.3, raising=False)
    lock_file = registry.state_dir() / "store.lock"
    error = _outcome_while_held(lock_file, lambda: registry.locked(lock_file))
    assert isinstance(error, UiStartError), error
    assert str(lock_file) in str(error)


def test_a_lock_released_within_the_wait_is_taken(tmp_path: Path) -> None:
    lock_file = tmp_path / "a.lock"
    holder = _held(lock_file)
    holder.__enter__()
    threading.Timer(0.2, holder.__exit__).start()
    with open_private(lock_file) as handle:
        assert _platform.try_lock(handle, wait=5.0)
        _platform.unlock(handle)
