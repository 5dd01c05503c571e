"""Which session folders a sync process replays and removes: only those of kernels that are
gone. A kernel that is starting makes its session folder first and writes its session.json into
it a moment later; another kernel's sync process, scanning for orphans meanwhile, must leave that
folder alone whenever the file appears (the two moments a scan looks are tried here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.processes import dead_pid

from nbtrack import _platform
from nbtrack._files import make_private_dir
from nbtrack.journal.folders import SessionInfo, SessionLock
from nbtrack.journal.worker import recover_orphans


def _kernel_starts(folder: Path, store: str) -> None:
    """What a starting kernel does right after making its folder (``SyncSession``)."""
    pid = os.getpid()
    SessionInfo.create(folder, pid, _platform.process_start_ticks(pid), store).save()
    (folder / "run0001-aaaaaa.spool").touch(mode=0o600)  # its first run's journal


@pytest.mark.parametrize("moment", ["after the scan reads the folder", "when the scan locks it"])
def test_a_session_folder_whose_kernel_starts_during_the_scan_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moment: str
) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    root = make_private_dir(tmp_path / "spool")
    starting = make_private_dir(root / "20260101-000001-starting")  # no session.json yet

    if moment == "after the scan reads the folder":
        load = SessionInfo.load.__func__  # type: ignore[attr-defined]

        def load_then_the_kernel_writes(cls: type[SessionInfo], folder: Path) -> SessionInfo | None:
            info: SessionInfo | None = load(cls, folder)
            if folder == starting and info is None:
                _kernel_starts(folder, store)
            return info

        monkeypatch.setattr(SessionInfo, "load", classmethod(load_then_the_kernel_writes))
    else:
        acquire = SessionLock.acquire

        def acquire_then_the_kernel_writes(lock: SessionLock) -> bool:
            taken = acquire(lock)
            folder = lock._path.parent  # which session it locks
            if folder == starting and not (folder / "session.json").exists():
                _kernel_starts(folder, store)
            return taken

        monkeypatch.setattr(SessionLock, "acquire", acquire_then_the_kernel_writes)

    done = recover_orphans(store, root=root, give_up_after_s=5)

    assert done == []
    assert (starting / "session.json").exists()
    assert (starting / "run0001-aaaaaa.spool").exists()


def test_the_session_of_a_dead_kernel_is_still_replayed_and_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    root = make_private_dir(tmp_path / "spool")
    folder = make_private_dir(root / "20260101-000000-dead")
    SessionInfo.create(folder, dead_pid(), None, store).save()

    done = recover_orphans(store, root=root, give_up_after_s=5)

    assert done == [f"{folder.name}: 0 run(s) uploaded to {store}"]
    assert not folder.exists()
