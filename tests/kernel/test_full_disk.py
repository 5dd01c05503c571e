"""A spool folder on a full or read-only disk: what could not be made durable is counted and
shown, runs end with a status and a tag that say so, and nothing is left RUNNING.

The disk is real: a 400 KB tmpfs mounted over the spool folder (or a read-only one), which
makes every write fail with ENOSPC (EROFS) once it is full, in the kernel and in its sync
process alike, as a small or full disk does. Mounting needs root (the test machine's user);
elsewhere these tests are skipped. RLIMIT_FSIZE would not do: it limits the size of each file,
not the room on the disk, and a per-file limit only ever hits the kernel's journal.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.kernels import Kernel, output_text

pytestmark = pytest.mark.kernel


@contextlib.contextmanager
def _mounted(folder: Path, options: str) -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {mount.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True)


def _record(outputs: list[dict[str, Any]]) -> dict[str, Any]:
    from helpers.kernels import RECORD

    records = [o["data"][RECORD] for o in outputs if RECORD in o.get("data", {})]
    assert records, output_text(outputs)
    return dict(records[-1])


def _fill(folder: Path) -> Path:
    """Fill the filesystem of ``folder`` to the last byte with a file of the user's."""
    ballast = folder / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, bytes(4096))
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0")
    finally:
        os.close(fd)
    return ballast


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("NBTRACK_SPOOL_DIR", str(tmp_path / "disk" / "spool"))
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("NBTRACK_RETRY_MAX_S", "1")
    monkeypatch.chdir(tmp_path)
    return uri


def test_a_full_spool_disk_is_counted_shown_and_ends_the_run_failed(env, tmp_path):
    from mlflow import MlflowClient

    steps = {"burst": 200_000, "filling": 40_000}
    with _mounted(tmp_path / "disk", "size=400k,mode=0700") as disk:
        kernel = Kernel(tmp_path)
        try:
            assert kernel.run("import nbtrack, time")[0]["status"] == "ok"
            # Lines far bigger than the disk: none fits, each is taken back whole.
            reply, burst = kernel.run(
                "%%track -e full -n burst\n"
                f"for i in range({steps['burst']}):\n"
                "    nbtrack.log(a=float(i), b=1.0, c=2.0)\n"
                "    if i % 1000 == 0:\n"
                "        time.sleep(0.001)"
            )
            assert reply["status"] == "ok"  # training went on
            # Small lines: they fill the disk to the last block while the run goes on.
            reply, filling = kernel.run(
                "%%track -e full -n filling\n"
                f"for i in range({steps['filling']}):\n"
                "    nbtrack.log(a=float(i), b=1.0, c=2.0)\n"
                "    if i % 100 == 0:\n"
                "        time.sleep(0.01)"
            )
            assert reply["status"] == "ok"
            _, outputs = kernel.run("print('stored', nbtrack.wait(120))")
            assert "stored True" in output_text(outputs)

            # A disk full to the last byte before a cell: it fails clearly, creates no run.
            ballast = _fill(disk)
            reply, _ = kernel.run("%%track -e full -n refused\nnbtrack.log(a=1.0)")
            assert reply["status"] == "error"
            assert reply["ename"] == "UsageError"
            assert "cannot write the run's journal" in reply["evalue"]
            assert "No space left on device" in reply["evalue"]
            assert "NBTRACK_SPOOL_DIR" in reply["evalue"]
            ballast.unlink()
            # With room again, tracking works.
            reply, _ = kernel.run("%%track -e full -n after\nnbtrack.log(a=1.0)")
            assert reply["status"] == "ok"
            _, outputs = kernel.run("print('stored', nbtrack.wait(120))")
            assert "stored True" in output_text(outputs)
            litter = sorted(str(p) for p in disk.rglob("*.tmp"))
        finally:
            kernel.shutdown()
    assert litter == []

    client = MlflowClient(env)
    experiment = client.get_experiment_by_name("full")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == ["after", "burst", "filling"]
    assert runs["after"].info.status == "FINISHED"
    for name, outputs in (("burst", burst), ("filling", filling)):
        run, record = runs[name], _record(outputs)
        stored = sum(
            len(client.get_metric_history(run.info.run_id, key)) for key in ("a", "b", "c")
        )
        lost = record["sync"]["lost_points"]
        # The record, MLflow's run and what was logged tell the same story.
        assert lost > 0, name
        assert stored + lost == 3 * steps[name], name
        assert run.info.status == "FAILED", name
        assert record["run"]["status"] == "FAILED", name
        assert run.data.tags["nbtrack.lost_points"] == str(lost)
        assert "No space left on device" in run.data.tags["nbtrack.end_reason"]
        assert record["sync"]["lost_reason"] == "No space left on device"
        shown = output_text(outputs)
        # Params or tags logged while the disk was full are lost too, and counted apart (how
        # many depends on when the disk filled).
        items = record["sync"].get("lost_items", 0)
        also = f" and {items:,} params/tags/artifacts" if items else ""
        assert f"{lost:,} points{also} not stored" in shown, shown
        # The cell never waits for the upload, so its record may still be syncing; but what it
        # says is on its way is only what the journal holds, never the lost points.
        pending = record["sync"]["pending_points"]
        assert pending <= stored, name
        if record["sync"]["state"] == "syncing" and not pending:
            assert "the run's end is still on its way to MLflow" in shown, shown
        assert f"{lost:,} points are still on their way" not in shown, shown


def test_a_read_only_spool_folder_fails_the_cell_clearly_and_leaves_no_run(env, tmp_path):
    from mlflow import MlflowClient

    with _mounted(tmp_path / "disk", "size=1m,mode=0700") as disk:
        _remount(disk, "ro")
        kernel = Kernel(tmp_path)
        try:
            assert kernel.run("import nbtrack, mlflow")[0]["status"] == "ok"
            reply, _ = kernel.run("%%track -e readonly -n refused\nnbtrack.log(a=1.0)")
            assert reply["status"] == "error"
            assert reply["ename"] == "UsageError"
            assert "Read-only file system" in reply["evalue"]
            assert "NBTRACK_SPOOL_DIR" in reply["evalue"]
            _, outputs = kernel.run("print('active:', nbtrack.active_run(), mlflow.active_run())")
            assert "active: None None" in output_text(outputs)
            _remount(disk, "rw")
            reply, _ = kernel.run("%%track -e readonly -n after\nnbtrack.log(a=1.0)")
            assert reply["status"] == "ok"
            _, outputs = kernel.run("print('stored', nbtrack.wait(120))")
            assert "stored True" in output_text(outputs)
        finally:
            kernel.shutdown()

    client = MlflowClient(env)
    experiment = client.get_experiment_by_name("readonly")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "after"
    assert run.info.status == "FINISHED"
    assert "mlflow.parentRunId" not in run.data.tags
