"""A journal another local user planted is never replayed (issue 11, item 8).

Another user (created for the test; we are root) plants a session in a spool folder they can
write to: its tracking URI is a store of their choice, or the victim's own, and its artifact
lines point at the victim's `.env`. Neither `nbtrack sync` nor a kernel loading nbtrack may
upload it anywhere."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.kernels import execute, notebook, text_of

pytestmark = pytest.mark.kernel

ATTACKER = "nbtrack-attacker"
API_KEY = "sk-victim-" + "k" * 30


@pytest.fixture(scope="module")
def attacker() -> Iterator[pwd.struct_passwd]:
    if os.geteuid() != 0 or shutil.which("useradd") is None or shutil.which("runuser") is None:
        pytest.skip("needs root, useradd and runuser to play another local user")
    created = False
    try:
        user = pwd.getpwnam(ATTACKER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", ATTACKER],
                       check=True)  # fmt: skip
        created = True
        user = pwd.getpwnam(ATTACKER)
    try:
        yield user
    finally:
        if created:
            subprocess.run(["userdel", ATTACKER], check=False)


def _as_attacker(script: str) -> None:
    subprocess.run(["runuser", "-u", ATTACKER, "--", "sh", "-ec", script], check=True)


def _plant(root: Path, store: str, victim_env: Path, name: str = "20260101-000000-planted") -> None:
    """The attacker's session: a dead kernel's journal naming ``store`` and the victim's file,
    by its absolute path and by a path climbing out of the staging folder."""
    session = {"format": 2, "kernel_pid": 999999, "kernel_start_ticks": None, "tracking_uri": store}
    lines = [
        {
            "t": "start",
            "experiment_name": "loot",
            "run_name": "planted",
            "start_time": 1700000000000,
            "tags": {},
        },
        {"t": "a", "path": str(victim_env), "dest": "loot"},
        {"t": "a", "path": "../" * 12 + str(victim_env).lstrip("/"), "dest": "loot"},
        {"t": "end", "status": "FINISHED", "end_time": 1700000001000},
    ]
    folder = root / name
    journal = "".join(json.dumps(line) + "\n" for line in lines)
    _as_attacker(
        f"mkdir -p '{folder}/run0001-aaaaaa.files'\n"
        f"chmod 700 '{folder}'\n"
        f"cat > '{folder}/session.json' <<'EOF'\n{json.dumps(session)}\nEOF\n"
        f"cat > '{folder}/run0001-aaaaaa.spool' <<'EOF'\n{journal}EOF\n"
    )


@pytest.fixture
def victim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The victim's home: a `.env` with an API key, a store of their own, nbtrack's cache."""
    home = tmp_path / "victim"
    home.mkdir()
    (home / ".env").write_text(f"OPENAI_API_KEY={API_KEY}\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(home / "state"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    monkeypatch.setenv("NBTRACK_SYNC_TIMEOUT", "5")
    monkeypatch.chdir(home)
    return home


@pytest.fixture
def loot(attacker: pwd.struct_passwd) -> Iterator[Path]:
    """A folder of the attacker's, where their store would receive the upload."""
    folder = Path(tempfile.mkdtemp(prefix="nbtrack-loot-"))
    os.chown(folder, attacker.pw_uid, attacker.pw_gid)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def shared_root() -> Iterator[Path]:
    """A spool folder every user can write to (the victim's NBTRACK_SPOOL_DIR)."""
    folder = Path(tempfile.mkdtemp(prefix="nbtrack-shared-spool-"))
    os.chmod(folder, 0o777)  # noqa: S103 - the very setting under test
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _sync(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nbtrack", "sync", "--spool-dir", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _nothing_leaked(loot: Path, victim: Path) -> None:
    for path in [*loot.rglob("*"), *victim.rglob("*")]:
        if path.is_file() and path.name != ".env":
            assert API_KEY.encode() not in path.read_bytes(), path
    assert not (loot / "mlflow.db").exists()


def test_nbtrack_sync_replays_no_planted_session(victim, loot, shared_root):
    _plant(shared_root, f"sqlite:///{loot / 'mlflow.db'}", victim / ".env")
    result = _sync(shared_root)
    assert "nothing in" in result.stdout
    assert "other users can write to it" in result.stdout
    assert result.returncode == 1  # the victim's own journals there could not be replayed
    _nothing_leaked(loot, victim)

    # The victim makes the folder theirs (chmod 700): the planted session is still not theirs.
    os.chmod(shared_root, 0o700)
    result = _sync(shared_root)
    assert "20260101-000000-planted: not replayed: it belongs to another user" in result.stdout
    assert result.returncode == 0
    _nothing_leaked(loot, victim)


def test_a_spool_folder_of_another_user_is_neither_replayed_nor_written(
    victim, loot, attacker, monkeypatch
):
    root = loot / "spool"
    _as_attacker(f"mkdir -m 777 '{root}'")
    _plant(root, f"sqlite:///{loot / 'mlflow.db'}", victim / ".env")
    result = _sync(root)
    assert "belongs to another user" in result.stdout
    monkeypatch.setenv("NBTRACK_SPOOL_DIR", str(root))
    nb = execute(
        notebook("%load_ext nbtrack", "%%track -e mine\nnbtrack.log(loss=1.0)", folder=victim),
        allow_errors=True,
    )
    assert "will not keep its journals in" in text_of(nb.cells[1])
    assert [p for p in root.iterdir() if p.stat().st_uid == os.getuid()] == []
    _nothing_leaked(loot, victim)


def test_a_kernel_loading_nbtrack_replays_no_planted_session_even_for_its_own_store(
    victim, loot, shared_root, monkeypatch
):
    # The attacker names the victim's own store, so that the victim's kernel would adopt it.
    _plant(shared_root, f"sqlite:///{victim / 'mlflow.db'}", victim / ".env")
    _plant(shared_root, f"sqlite:///{loot / 'mlflow.db'}", victim / ".env", "20260101-planted-2")
    monkeypatch.setenv("NBTRACK_SPOOL_DIR", str(shared_root))
    nb = execute(
        notebook(
            "%load_ext nbtrack",
            "%%track -e mine\nnbtrack.log(loss=1.0)",
            # While the kernel lives, its sync process's log is there to read.
            "import glob, time\nnbtrack.wait(60)\nfor _ in range(300):\n"
            "    log = ''.join(open(p).read() for p in glob.glob("
            f"{str(shared_root)!r} + '/*/worker.log'))\n"
            "    if 'not replayed' in log:\n        break\n    time.sleep(0.1)\nprint(log)",
            folder=victim,
        )
    )
    assert "Error" not in text_of(nb.cells[1])
    worker_log = text_of(nb.cells[2])
    from mlflow import MlflowClient

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    assert client.get_experiment_by_name("loot") is None
    (run,) = client.search_runs([client.get_experiment_by_name("mine").experiment_id])
    assert run.info.status == "FINISHED"
    assert "20260101-planted-2: not replayed: it belongs to another user" in worker_log
    _nothing_leaked(loot, victim)
