"""A store that cannot be opened: the sync process survives it and tells the kernel, and
``nbtrack sync`` says in one line why it kept a journal, never with a raw traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.kernels import Kernel, sync_process_pids, wait_for

pytestmark = pytest.mark.kernel


def _sync() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nbtrack", "sync"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_store_that_cannot_be_opened_is_retried_and_then_replayed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "mlflow.db"
    store.write_text("this is not a database\n" * 100)  # a corrupt file where the store is
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    monkeypatch.setenv("NBTRACK_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("NBTRACK_RETRY_MAX_S", "1")
    monkeypatch.setenv("NBTRACK_SYNC_TIMEOUT", "3")
    monkeypatch.setenv("NBTRACK_END_WAIT", "0")
    kernel = Kernel(tmp_path)
    try:
        reply, _ = kernel.run("import nbtrack, time")
        assert reply["status"] == "ok"
        reply, _ = kernel.run(
            "%%track -e broken\nfor i in range(2000):\n    nbtrack.log(loss=float(i))"
        )
        assert reply["status"] == "ok"
        # The sync process retries (backoff up to 1 s here) and lives on.
        reply, outputs = kernel.run(
            "time.sleep(3)\n"
            "from nbtrack.journal import session\n"
            "print('starts', sum(s.worker_starts for s in session._sessions.values()))"
        )
        assert "starts 1" in "".join(o.get("text", "") for o in outputs)
        # The kernel and its sync process are lost before the store is repaired.
        for pid in sync_process_pids(tmp_path):
            os.kill(pid, signal.SIGKILL)
        os.kill(kernel.pid, signal.SIGKILL)
    finally:
        kernel.shutdown()
    wait_for(lambda: not sync_process_pids(tmp_path), 30, "the sync process to be gone")

    kept = _sync()
    assert kept.returncode == 1
    assert "Traceback" not in kept.stdout + kept.stderr
    (line,) = kept.stdout.splitlines()
    assert "kept for a later `nbtrack sync`" in line
    assert "not a database" in line  # why, in the user's words of the store's error

    store.unlink()  # repaired: MLflow creates a new store there
    done = _sync()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 run(s) uploaded" in done.stdout
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{store}")
    (run,) = client.search_runs([client.get_experiment_by_name("broken").experiment_id])
    assert run.info.status == "FINISHED"  # its cell had ended before the kernel died
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 2000
