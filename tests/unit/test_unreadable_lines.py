"""Journal lines the sync process cannot use: torn ones (a crash or a full disk cut them) and
ones that are JSON but do not fit the format (a flipped byte). Each is skipped and counted, the
run ends FAILED saying how many, every other line still arrives, and the count survives a
restart of the sync process. Replayed in this process into a SQLite store."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from array import array
from pathlib import Path
from typing import Any

import pytest
from helpers.processes import dead_pid

from nbtrack._files import make_private_dir
from nbtrack._model import MetricPoints
from nbtrack.journal.folders import SessionInfo, acknowledged
from nbtrack.journal.format import encode, metrics_line
from nbtrack.journal.store_errors import StoreUnavailable
from nbtrack.journal.upload import RunUploader
from nbtrack.journal.uploader import SessionUploader
from nbtrack.journal.worker import recover_orphans

TORN = b'{"t":"b","ts":["AAAA\n'
SKIPPED_ONE = "1 unreadable journal lines skipped"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # the store's artifacts go to ./mlruns
    return uri


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_private_dir(tmp_path / "spool")


def _session(root: Path, store: str, pid: int) -> Path:
    folder = make_private_dir(root / "20260101-000000-kernel")
    SessionInfo.create(folder, pid, None, store).save()
    return folder


def _batch(value: float, step: int) -> bytes:
    points = MetricPoints(range(step, step + 1), array("d", [value]), array("d", [1e9 + step]))
    return encode(metrics_line({"loss": points}))


def _start() -> bytes:
    return encode({"t": "start", "experiment_name": "e", "run_name": "r", "start_time": 1})


def _end(status: str = "FINISHED") -> bytes:
    return encode({"t": "end", "status": status, "end_time": 2})


def _journal(folder: Path, *lines: bytes) -> Path:
    spool = folder / "run0001-aaaaaa.spool"
    with spool.open("ab") as out:
        out.write(b"".join(lines))
    os.chmod(spool, 0o600)
    return spool


def _only_run(store: str) -> Any:
    from mlflow import MlflowClient

    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("e")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    return run


def _history(store: str, run: Any) -> list[tuple[int, float]]:
    from mlflow import MlflowClient

    history = MlflowClient(store).get_metric_history(run.info.run_id, "loss")
    return sorted((m.step, m.value) for m in history)


def test_a_torn_line_is_still_counted_after_the_sync_process_restarts(
    store: str, root: Path
) -> None:
    folder = _session(root, store, os.getpid())  # a live kernel
    spool = _journal(folder, _start(), _batch(1.0, 0), TORN, _batch(2.0, 2))
    first = SessionUploader(SessionInfo.load(folder), store)  # type: ignore[arg-type]
    first.step()
    assert acknowledged(spool, spool.stat().st_size)  # read past the torn line
    # That sync process stops (its kernel restarts it when the credentials change, or it is
    # killed); the cell ends, then the kernel dies: another process ends the run.
    _journal(folder, _end())
    SessionInfo.create(folder, dead_pid(), None, store).save()

    done = recover_orphans(None, root=root, give_up_after_s=30)

    assert done == [f"{folder.name}: 1 run(s) uploaded to {store}"]
    run = _only_run(store)
    assert run.info.status == "FAILED"
    assert SKIPPED_ONE in run.data.tags["nbtrack.end_reason"]
    assert run.data.tags["nbtrack.lost_points"] == "0"
    assert _history(store, run) == [(0, 1.0), (2, 2.0)]


def test_a_torn_line_read_again_after_an_outage_is_counted_once(
    store: str, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    folder = _session(root, store, os.getpid())
    spool = _journal(folder, _start(), TORN, _batch(1.0, 0))
    client = MlflowClient(store)
    uploader = RunUploader(spool, client, {})
    assert uploader.create()
    log_batch = client.log_batch
    outage = [ConnectionError("store away")]

    def once_away(*args: Any, **kwargs: Any) -> Any:
        if outage:
            raise outage.pop()
        return log_batch(*args, **kwargs)

    monkeypatch.setattr(client, "log_batch", once_away)
    with pytest.raises(StoreUnavailable):
        uploader.step()  # the torn line is read, the points after it are not stored
    uploader.step()  # read again, once the store is back
    _journal(folder, _end())
    uploader.step()

    assert uploader.ended
    run = _only_run(store)
    assert run.info.status == "FAILED"
    assert SKIPPED_ONE in run.data.tags["nbtrack.end_reason"]
    assert _history(store, run) == [(0, 1.0)]


# Lines that are JSON but not what nbtrack writes; the brief's one-digit corruption first.
MALFORMED: dict[str, dict[str, Any]] = {
    "time column out of range": {"t": "b", "ts": [], "m": {"loss": [0, "AAAAAAAA8D8=", 0]}},
    "base64 cut short": {"t": "b", "ts": ["AAAAAAAA8D8="], "m": {"loss": [0, "AAAAAAAA8D8", 0]}},
    "values not whole floats": {"t": "b", "ts": ["AAAAAAAA8D8="], "m": {"loss": [0, "AAAA", 0]}},
    "more steps than values": {
        "t": "b",
        "ts": ["AAAAAAAA8D8="],
        "m": {"loss": ["AAAAAAAAAAABAAAAAAAAAA==", "AAAAAAAA8D8=", 0]},
    },
    "metrics not an object": {"t": "b", "ts": [], "m": ["loss"]},
    "a metric of two fields": {"t": "b", "ts": ["AAAAAAAA8D8="], "m": {"loss": [0, 0]}},
    "a time column of a number": {"t": "b", "ts": [5], "m": {}},
    "no metrics": {"t": "b"},
    "params not an object": {"t": "p", "p": ["lr"]},
    "tags a string": {"t": "g", "g": "nbtrack.x"},
    "artifact destination a list": {"t": "a", "path": "model", "dest": ["models"]},
}


@pytest.mark.parametrize("line", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_line_that_does_not_fit_the_format_is_skipped_counted_and_the_rest_arrives(
    store: str, root: Path, line: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    folder = _session(root, store, dead_pid())
    _journal(
        folder,
        _start(),
        encode({"t": "p", "p": {"lr": 0.1}}),
        _batch(1.0, 0),
        encode(line),
        _batch(2.0, 1),
        encode({"t": "p", "p": {"batch": 32}}),
        encode({"t": "g", "g": {"team": "a"}}),
        _end(),
    )
    caplog.set_level(logging.INFO, logger="nbtrack.sync")

    done = recover_orphans(None, root=root, give_up_after_s=30)

    assert done == [f"{folder.name}: 1 run(s) uploaded to {store}"]
    assert not folder.exists()
    run = _only_run(store)
    assert run.info.status == "FAILED"
    assert SKIPPED_ONE in run.data.tags["nbtrack.end_reason"]
    assert run.data.params == {"lr": "0.1", "batch": "32"}
    assert run.data.tags["team"] == "a"
    assert _history(store, run) == [(0, 1.0), (1, 2.0)]
    # Said once, in one line that names the journal, without a traceback.
    skipped = [r for r in caplog.records if "skipped the line" in r.getMessage()]
    assert len(skipped) == 1
    assert "run0001-aaaaaa" in skipped[0].getMessage()
    assert "\n" not in skipped[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize(
    "end",
    [
        {"t": "end", "status": "FINISHED", "end_time": "soon"},
        {"t": "end", "status": "FINISHEX", "end_time": 2},
        {"t": "end", "status": "FINISHED"},
        {"t": "end", "status": "FINISHED", "end_time": 2, "lost_points": [1]},
    ],
    ids=["end time not a number", "unknown status", "no end time", "lost points a list"],
)
def test_an_end_line_that_does_not_fit_still_ends_the_run_failed(
    store: str, root: Path, end: dict[str, Any]
) -> None:
    folder = _session(root, store, dead_pid())
    _journal(folder, _start(), encode({"t": "p", "p": {"lr": 0.1}}), _batch(1.0, 0), encode(end))

    done = recover_orphans(None, root=root, give_up_after_s=30)

    assert done == [f"{folder.name}: 1 run(s) uploaded to {store}"]
    run = _only_run(store)
    assert run.info.status == "FAILED"
    assert SKIPPED_ONE in run.data.tags["nbtrack.end_reason"]
    assert "died" not in run.data.tags["nbtrack.end_reason"]  # its own end, not the kernel's
    assert run.data.params == {"lr": "0.1"}
    assert _history(store, run) == [(0, 1.0)]


@pytest.mark.parametrize(
    "start",
    [
        encode({"t": "start", "experiment_name": "e", "run_name": "r"}),
        encode({"t": "start", "experiment_name": "e", "start_time": 1, "tags": ["x"]}),
        b'{"t":"start","experiment_name":"e","run_na\n',
    ],
    ids=["no start time", "tags a list", "torn"],
)
def test_a_start_line_that_cannot_make_a_run_keeps_the_journal_and_says_why_in_one_line(
    store: str, root: Path, start: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _session(root, store, dead_pid())
    spool = _journal(folder, start, _batch(1.0, 0), _end())

    done = recover_orphans(None, root=root, give_up_after_s=30)

    (line,) = done
    assert line.startswith(f"{folder.name}: ")
    assert "start line" in line
    assert line.endswith("kept for a later `nbtrack sync`")
    assert spool.exists()
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize(
    "start",
    [b'{"t":"start","experiment_name":"e","run_na\n', b"\xff\xfe garbage\n"],
    ids=["torn", "corrupted"],
)
def test_a_journal_of_only_an_unreadable_start_line_is_kept_too(
    store: str, root: Path, start: bytes
) -> None:
    # Found by a review (issue 10's thirteenth session): with nothing after it, the journal
    # was deleted and `nbtrack sync` said "1 run(s) uploaded".
    folder = _session(root, store, dead_pid())
    spool = _journal(folder, start)

    done = recover_orphans(None, root=root, give_up_after_s=30)

    (line,) = done
    assert line == f"{folder.name}: its start line cannot be read; it stays in {spool}; kept " \
        "for a later `nbtrack sync`"  # fmt: skip
    assert spool.read_bytes() == start


def test_nbtrack_sync_replays_a_poisoned_journal_in_one_line_without_a_traceback(
    store: str, root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbtrack.journal import replay

    monkeypatch.setenv("NBTRACK_SYNC_TIMEOUT", "10")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # (replay sets them otherwise)
    monkeypatch.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    folder = _session(root, store, dead_pid())
    _journal(
        folder,
        _start(),
        encode({"t": "p", "p": {"lr": 0.1}}),
        encode(MALFORMED["time column out of range"]),
        encode({"t": "p", "p": {"batch": 32}}),
        _end(),
    )

    assert replay.main(str(root)) == 0
    out, err = capsys.readouterr()
    assert out == f"nbtrack sync: {folder.name}: 1 run(s) uploaded to {store}\n"
    assert "Traceback" not in err
    run = _only_run(store)
    assert run.info.status == "FAILED"
    assert run.data.params == {"lr": "0.1", "batch": "32"}


def test_a_malformed_line_of_another_process_of_the_run_is_skipped_and_counted(
    store: str, root: Path
) -> None:
    folder = _session(root, store, dead_pid())
    spool = _journal(folder, _start(), _batch(1.0, 0), _end())
    child = spool.with_name(f"{spool.stem}.1.child")
    child.write_bytes(
        encode({"t": "child", "name": "rank1", "process": "rank 1"})
        + encode(MALFORMED["time column out of range"])
        + TORN
        + _batch(5.0, 7)
        + encode({"t": "end"})
    )
    os.chmod(child, 0o600)

    done = recover_orphans(None, root=root, give_up_after_s=30)

    assert done == [f"{folder.name}: 1 run(s) uploaded to {store}"]
    run = _only_run(store)
    assert run.info.status == "FAILED"
    assert "2 unreadable journal lines skipped" in run.data.tags["nbtrack.end_reason"]
    assert run.data.tags["nbtrack.processes.rank1"] == "rank 1"
    assert _history(store, run) == [(0, 1.0), (7, 5.0)]


def test_a_malformed_newest_line_previews_nothing_and_stops_nothing(store: str, root: Path) -> None:
    from mlflow import MlflowClient

    folder = _session(root, store, os.getpid())
    spool = _journal(folder, _start(), _batch(1.0, 0), encode(MALFORMED["no metrics"]))
    uploader = RunUploader(spool, MlflowClient(store), {})
    assert uploader.create()
    uploader.send_preview()  # the newest b line does not fit: nothing goes ahead
    assert uploader.step()
    assert _history(store, _only_run(store)) == [(0, 1.0)]


def test_nbtrack_sync_failing_on_this_side_prints_no_traceback_at_its_retries(
    store: str, root: Path
) -> None:
    # Found by a review (issue 10's thirteenth session): a damaged .state file (or a spool
    # that is a folder) printed a traceback at every retry until `nbtrack sync` gave up.
    folder = _session(root, store, dead_pid())
    spool = _journal(folder, _start(), _batch(1.0, 0), _end())
    spool.with_suffix(".state").write_text('{"offset": "abc"}')
    os.chmod(spool.with_suffix(".state"), 0o600)
    env = {**os.environ, "NBTRACK_SYNC_TIMEOUT": "2"}

    result = subprocess.run(
        [sys.executable, "-m", "nbtrack", "sync", "--spool-dir", str(root)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip

    assert result.returncode == 1
    assert result.stdout.startswith(f"nbtrack sync: {folder.name}: nbtrack's sync process: ")
    assert result.stdout.rstrip().endswith("kept for a later `nbtrack sync`")
    assert "sync step failed, retrying" in result.stderr  # said, one line a retry
    assert "Traceback" not in result.stderr
    assert spool.exists()


def test_a_session_naming_an_impossible_pid_or_a_malformed_store_variable_is_replayed(
    store: str, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by a review (issue 10's thirteenth session): a pid past any the system gives
    # (os.kill raised OverflowError), and MLFLOW_TRACKING_URI=http://[::1 (urllib raised),
    # each stopped `nbtrack sync` with a traceback.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://[::1")
    folder = _session(root, store, 2**70)
    _journal(folder, _start(), _batch(1.0, 0), _end())

    done = recover_orphans(None, root=root, give_up_after_s=30)

    assert done == [f"{folder.name}: 1 run(s) uploaded to {store}"]
    assert _history(store, _only_run(store)) == [(0, 1.0)]
