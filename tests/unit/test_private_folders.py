"""nbtrack keeps its files only in folders no other user can change: the spool, the MLflow UI
registry and the store-creation locks are refused, with what is wrong and the fix, when another
user owns them, can write to them, or can replace them through a folder above them (a folder of
theirs, or one they can write to that is not sticky like /tmp). Another user's folders are
played by an unused uid (the tests run as root), or by folders every user can write to."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import pytest

from nbtrack import tracking
from nbtrack.errors import UiStartError
from nbtrack.journal.folders import JournalError
from nbtrack.journal.session import SyncSession
from nbtrack.ui import process, registry

OTHER_UID = 54321  # a uid with no user: another local user, for os.chown

needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="needs root to give a folder to another user",
)


def _theirs(folder: Path, mode: int = 0o755) -> Path:
    """``folder``, made another user's."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chown(folder, OTHER_UID, OTHER_UID)
    os.chmod(folder, mode)
    return folder


@pytest.fixture(autouse=True)
def _no_such_user() -> None:
    with pytest.raises(KeyError):
        pwd.getpwuid(OTHER_UID)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The victim's XDG_CACHE_HOME; spool and state in their default places under it."""
    folder = tmp_path / "xdg"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    monkeypatch.delenv("NBTRACK_SPOOL_DIR", raising=False)
    monkeypatch.delenv("NBTRACK_STATE_DIR", raising=False)
    return folder


@needs_root
def test_a_spool_under_a_folder_of_another_user_is_refused_before_anything_is_written(
    cache: Path, tmp_path: Path
) -> None:
    # Mallory made `nbtrack` in the victim's cache first: she could later swap the spool
    # folder in it for one of hers, holding a journal and a link of her choice.
    planted = _theirs(cache / "nbtrack", 0o777)
    with pytest.raises(JournalError) as refused:
        SyncSession(f"sqlite:///{tmp_path / 'mlflow.db'}")
    message = str(refused.value)
    assert f"will not keep its journals in {planted / 'spool'}" in message
    assert str(planted) in message
    assert f"uid {OTHER_UID}" in message
    assert "NBTRACK_SPOOL_DIR" in message
    assert list(planted.iterdir()) == []


@pytest.mark.parametrize(("mode", "refused"), [(0o777, True), (0o1777, False)])
def test_a_folder_above_that_others_can_write_to_is_refused_unless_sticky(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int, refused: bool
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, mode)  # ours (or root's), like /tmp when sticky
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(shared / "state"))
    if not refused:
        assert registry.state_dir() == shared / "state" / "ui"
        return
    with pytest.raises(UiStartError) as error:
        registry.state_dir()
    assert f"other users can write to {shared}" in str(error.value)
    assert "NBTRACK_STATE_DIR" in str(error.value)
    assert list(shared.iterdir()) == []


@needs_root
def test_a_ui_registry_folder_of_another_user_is_refused(
    cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(tmp_path / "state"))
    _theirs(tmp_path / "state" / "ui", 0o700)
    with pytest.raises(UiStartError, match="will not keep the addresses of its MLflow UIs in"):
        registry.state_dir()
    # Looking for a running UI (a run's link) finds none there, and does not fail.
    assert process.find_ui(f"sqlite:///{tmp_path / 'mlflow.db'}") is None


@needs_root
def test_a_lock_folder_of_another_user_is_refused(
    cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(tmp_path / "state"))
    _theirs(tmp_path / "state" / "locks", 0o700)
    with (
        pytest.raises(OSError, match="will not keep its locks in"),
        tracking._store_creation_lock(f"sqlite:///{tmp_path / 'mlflow.db'}"),
    ):
        pass


def test_the_ui_log_is_never_written_through_a_link(
    cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    victim = tmp_path / "precious.txt"
    victim.write_text("the victim's work\n")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (registry.state_dir() / f"{registry.key(uri)}.log").symlink_to(victim)

    def no_ui(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the UI must not start with its log going through a link")

    monkeypatch.setattr(subprocess, "Popen", no_ui)
    with pytest.raises(UiStartError, match="log"):
        process._start(uri, 5.0, owned=False)
    assert victim.read_text() == "the victim's work\n"
