"""What a replayed journal may upload: only files nbtrack itself staged for the run, never what
a link in the staging folder points at (issue 11, item 8). The victim's own session, replayed
in this process into a SQLite store."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from helpers.processes import dead_pid

from nbtrack._files import make_private_dir
from nbtrack.journal.folders import SessionInfo, staged_artifact
from nbtrack.journal.worker import recover_orphans

API_KEY = "sk-victim-" + "k" * 30


def test_links_in_a_staging_folder_are_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "home" / ".env"
    secret.parent.mkdir()
    secret.write_text(f"OPENAI_API_KEY={API_KEY}\n")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.chdir(tmp_path)  # the store's artifacts go to ./mlruns
    root = make_private_dir(tmp_path / "spool")
    folder = make_private_dir(root / "20260101-000000-mine")
    SessionInfo.create(folder, dead_pid(), None, store).save()
    staged = folder / "run0001-aaaaaa.files"
    make_private_dir(staged / "artifact-1")
    (staged / "artifact-1" / "notes.txt").write_text("kept\n")
    (staged / "artifact-1" / "env").symlink_to(secret)
    make_private_dir(staged / "artifact-2")
    (staged / "artifact-2" / "env").symlink_to(secret)
    lines = [
        {"t": "start", "experiment_name": "e", "run_name": "r", "start_time": 1, "tags": {}},
        {"t": "a", "path": "artifact-1", "dest": "folder"},
        {"t": "a", "path": "artifact-2/env", "dest": "file"},
        {"t": "end", "status": "FINISHED", "end_time": 2},
    ]
    (folder / "run0001-aaaaaa.spool").write_text("".join(json.dumps(x) + "\n" for x in lines))
    os.chmod(folder / "run0001-aaaaaa.spool", 0o600)

    done = recover_orphans(None, root=root, give_up_after_s=30)
    assert done == ["20260101-000000-mine: 1 run(s) uploaded to " + store]

    from mlflow import MlflowClient

    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("e").experiment_id])
    local = Path(client.download_artifacts(run.info.run_id, ""))
    assert (local / "folder" / "notes.txt").read_text() == "kept\n"
    uploaded = [p for p in local.rglob("*") if p.is_file()]
    assert all(API_KEY not in p.read_text() for p in uploaded), uploaded
    assert not (local / "file").exists()


def _session_with_files(tmp_path: Path) -> Path:
    """A session folder of the victim's, with one run's journal; returns the journal."""
    folder = make_private_dir(make_private_dir(tmp_path / "spool") / "20260101-000000-mine")
    spool = folder / "run0001-aaaaaa.spool"
    spool.touch(mode=0o600)
    return spool


def test_a_staging_folder_that_is_a_link_is_not_followed(tmp_path: Path) -> None:
    # Another user swapped the run's `.files` folder for a link to the victim's home: a
    # journal line naming a file there must not upload it.
    home = make_private_dir(tmp_path / "home")
    (home / "important.txt").write_text(f"OPENAI_API_KEY={API_KEY}\n")
    spool = _session_with_files(tmp_path)
    spool.with_suffix(".files").symlink_to(home)
    assert staged_artifact(spool, "important.txt") is None


def test_a_link_anywhere_on_a_staged_path_is_not_followed(tmp_path: Path) -> None:
    home = make_private_dir(tmp_path / "home")
    (home / "important.txt").write_text(f"OPENAI_API_KEY={API_KEY}\n")
    spool = _session_with_files(tmp_path)
    staged = make_private_dir(spool.with_suffix(".files"))
    (staged / "artifact-1").symlink_to(home)
    assert staged_artifact(spool, "artifact-1/important.txt") is None
    assert staged_artifact(spool, "artifact-1") is None


def test_checking_a_staged_folder_never_deletes_through_a_link(tmp_path: Path) -> None:
    # The staging walk removes links it finds in a staged folder; through a linked `.files`
    # it would remove links in the victim's own folders.
    home = make_private_dir(tmp_path / "home")
    make_private_dir(home / "docs")
    (home / "docs" / "latest").symlink_to(home / "important.txt")
    spool = _session_with_files(tmp_path)
    spool.with_suffix(".files").symlink_to(home)
    assert staged_artifact(spool, "docs") is None
    assert (home / "docs" / "latest").is_symlink()


def test_a_runs_key_is_a_uuid_so_runs_of_two_kernels_never_merge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sync process adopts a run in the store carrying the journal's key (after a crash,
    # so as not to create it twice). The key was "run0001-" plus 24 random bits, the same
    # first name in every kernel: two kernels' runs collided (and merged) at about 3 % among
    # 1,000 first runs of one experiment.
    from nbtrack.journal.session import SyncSession

    monkeypatch.setenv("NBTRACK_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setattr(SyncSession, "ensure_worker", lambda _self: None)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first, second = SyncSession(store).new_spool(), SyncSession(store).new_spool()
    for spool in (first, second):
        counter, random = spool.stem.split("-", 1)
        assert counter == "run0001"
        assert uuid.UUID(hex=random).version == 4
    assert first.stem != second.stem
