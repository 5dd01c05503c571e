"""Files nbtrack writes are private and hold no credential (issue 11, items 6 and 7): a kernel
under a 022 umask tracks into a store whose URI has a password and that does not answer, so
that the sync process logs its retries; then every file nbtrack wrote is checked."""

from __future__ import annotations

import os
import socket
import stat
import time
from pathlib import Path

import pytest
from helpers.kernels import Kernel, output_text, wait_for

pytestmark = pytest.mark.kernel

PASSWORD = "PW-9f8e7d6c5b4a"


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: nothing listens there


def _problems(folder: Path) -> list[str]:
    problems = []
    for path in [folder, *folder.rglob("*")]:
        info = path.lstat()
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            problems.append(f"{path} is {stat.filemode(info.st_mode)}")
        if path.is_file() and not path.is_symlink() and PASSWORD.encode() in path.read_bytes():
            problems.append(f"{path} holds the password")
    return problems


def test_spool_state_logs_and_locks_are_private_and_hold_no_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "home" / ".cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("NBTRACK_SPOOL_DIR", raising=False)
    monkeypatch.delenv("NBTRACK_STATE_DIR", raising=False)
    monkeypatch.setenv(
        "MLFLOW_TRACKING_URI", f"http://alice:{PASSWORD}@127.0.0.1:{_unused_port()}/"
    )
    monkeypatch.setenv("NBTRACK_RETRY_MAX_S", "0.5")
    monkeypatch.setenv("NBTRACK_EXIT_WAIT", "1")
    (tmp_path / "data.txt").write_text("an artifact\n")
    os.chmod(tmp_path / "data.txt", 0o644)
    old_umask = os.umask(0o022)
    try:
        kernel = Kernel(tmp_path)
    finally:
        os.umask(old_umask)
    try:
        kernel.run("%load_ext nbtrack")
        reply, _ = kernel.run(
            "%%track -e private\nlr = 0.1\nnbtrack.log(loss=1.0)\n"
            "nbtrack.log_artifact('data.txt')\nnbtrack.wait(1)"
        )
        assert reply["status"] == "ok", reply
        kernel.run("%%track -e private\nraise ValueError('the cell failed')")
        root = cache / "nbtrack"
        logs = list(root.rglob("worker.log"))
        assert logs, "no sync process log was written"

        def retried() -> bool:
            return logs[0].read_text().count("store unavailable") >= 3

        wait_for(retried, 60, "the sync process to log its retries")
        time.sleep(0.5)
        assert "127.0.0.1" in logs[0].read_text()  # the log does say which store
        problems = _problems(root)
        assert problems == [], "\n".join(problems)
    finally:
        kernel.shutdown()

    # A local store too, under the same umask: its creation lock, an MLflow UI's registry
    # entry, lock and log.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    os.umask(0o022)
    try:
        kernel = Kernel(tmp_path)
    finally:
        os.umask(old_umask)
    try:
        reply, _ = kernel.run("%load_ext nbtrack\n%track_ui --local\n", timeout=180)
        assert reply["status"] == "ok", reply
        reply, _ = kernel.run("%%track -e local\nnbtrack.log(loss=1.0)\nnbtrack.wait(60)")
        assert reply["status"] == "ok", reply
        assert list((root / "ui").glob("*.json")), "no UI registry entry"
        assert list((root / "locks").glob("*.lock")), "no store lock"
        problems = _problems(root)
        assert problems == [], "\n".join(problems)
    finally:
        kernel.shutdown()


def test_no_home_folder_fails_a_tracked_cell_clearly(store: str, tmp_path: Path) -> None:
    # A container: HOME unset and a uid without a user database entry, so there is no
    # ~/.cache for nbtrack's files. The cell fails with a UsageError that says so, as on a
    # read-only HOME, not with a traceback, and no run is left behind.
    kernel = Kernel(tmp_path)
    try:
        reply, _ = kernel.run(
            "import os, pwd\n"
            "for name in ('HOME', 'XDG_CACHE_HOME', 'NBTRACK_SPOOL_DIR', 'NBTRACK_STATE_DIR'):\n"
            "    os.environ.pop(name, None)\n"
            "def _no_entry(uid):\n"
            "    raise KeyError(uid)\n"
            "pwd.getpwuid = _no_entry\n"
            "%load_ext nbtrack"
        )
        assert reply["status"] == "ok", reply
        reply, _ = kernel.run("%%track -e nohome\nnbtrack.log(loss=1.0)")
        assert reply["status"] == "error"
        assert reply["ename"] == "UsageError", reply
        assert "HOME is not set" in reply["evalue"]
        assert "NBTRACK_SPOOL_DIR" in reply["evalue"]
        _, outputs = kernel.run("print('active:', nbtrack.active_run())")
        assert "active: None" in output_text(outputs)
    finally:
        kernel.shutdown()
