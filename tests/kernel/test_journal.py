"""Logging that never loses a point: the spool, the sync process, recovery, outages."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.kernels import Kernel, execute, notebook, text_of

from nbtrack.journal.format import LINE_POINTS

pytestmark = pytest.mark.kernel
# Each test that uses `store` runs against the embedded SQLite default and the team server.
STORES = ("sqlite", "server")


def _only_run(client: Any, experiment: str) -> Any:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    (run,) = client.search_runs([exp.experiment_id])
    return run


def _steps(client: Any, run_id: str, key: str) -> list[int]:
    return [m.step for m in client.get_metric_history(run_id, key)]


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _worker_pids(spool_root: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"nbtrack.journal.worker" in cmdline and str(spool_root).encode() in cmdline:
                pids.append(int(proc.name))
    return pids


def _journaled(spool_root: Path, key: str) -> tuple[int, int]:
    """How many points of ``key`` the journals under ``spool_root`` hold (what a crash left),
    and the most points one of their lines holds."""
    from nbtrack.journal.format import read_lines, unpack

    count = largest = 0
    for spool in spool_root.glob("*/*.spool"):
        for record, _ in read_lines(spool, 0, 1 << 30):
            if record is not None and record["t"] == "b" and key in record["m"]:
                points = len(unpack(record["m"][key][1], "d"))
                count += points
                largest = max(largest, points)
    return count, largest


def _sync_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nbtrack", "sync", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )


def test_30k_steps_arrive_exactly_once_in_step_order(store, client):
    path = notebook(
        "import nbtrack",
        "%%track -e long\nfor i in range(30_000):\n    nbtrack.log(loss=1.0 / (i + 1))\n"
        "    if i % 100 == 0:\n        nbtrack.log(val=float(i), step=i)",
        "assert nbtrack.wait(300)",
    )
    execute(path)
    run = _only_run(client, "long")
    assert run.info.status == "FINISHED"
    assert _steps(client, run.info.run_id, "loss") == list(range(30_000))
    assert _steps(client, run.info.run_id, "val") == list(range(0, 30_000, 100))


def test_many_small_cells_in_a_row(store, client):
    cells = [
        f"%%track -e small -n c{i}\nnbtrack.log(x=float({i}))\nnbtrack.log(x=0.5)"
        for i in range(25)
    ]
    execute(notebook("import nbtrack", *cells, "assert nbtrack.wait(120)"))
    exp = client.get_experiment_by_name("small")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    assert sorted(r.info.run_name for r in runs) == sorted(f"c{i}" for i in range(25))
    for run in runs:
        assert run.info.status == "FINISHED"
        i = int(run.info.run_name[1:])
        history = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "x")]
        assert history == [(0, float(i)), (1, 0.5)]


def test_upload_is_paced_while_its_cell_runs_and_wait_lifts_it(store, client, monkeypatch):
    # While a cell still logs, its upload may use 1 % of a core: its first piece waits about
    # 5 s (99x the 0.05 s a piece is assumed to cost), and after each piece of about 250
    # points (pacer.PIECE_POINTS: one spool line, of the twelve each burst of 3000 is written
    # as) it rests 99x the CPU time that piece took (~25 ms into SQLite, so ~2.5 s).
    monkeypatch.setenv("NBTRACK_SYNC_CPU_SHARE", "0.01")
    monkeypatch.setenv("NBTRACK_FLUSH_INTERVAL", "0.1")  # a flush after each burst
    path = notebook(
        "import mlflow, nbtrack, time",
        "%%track -e paced\n"
        "for i in range(30_000):\n"
        "    nbtrack.log(loss=float(i))\n"
        "    if i % 3000 == 2999:\n"
        "        time.sleep(0.15)\n"
        "time.sleep(2)\n"
        "run_id = nbtrack.active_run().run_id\n"
        "stored = lambda: len(mlflow.MlflowClient().get_metric_history(run_id, 'loss'))\n"
        "while_running = stored()\n"
        "assert nbtrack.wait(300)  # inside the cell: waits for what was logged so far\n"
        "after_wait = stored()\n"
        "for i in range(30_000, 35_000):\n"
        "    nbtrack.log(loss=float(i))",
        "assert nbtrack.wait(300)\nprint(while_running, after_wait)",
    )
    nb = execute(path)
    while_running, after_wait = map(int, text_of(nb.cells[2]).split())
    # Unpaced, the 3.5 s of the cell would have stored nearly all 30k (10k points/s into
    # SQLite, 5k into the server).
    assert while_running <= 6000
    assert after_wait == 30_000
    run = _only_run(client, "paced")
    assert run.info.status == "FINISHED"
    assert _steps(client, run.info.run_id, "loss") == list(range(35_000))


def test_a_running_cells_upload_starts_with_a_rest_and_its_newest_points_go_ahead(
    store, client, monkeypatch
):
    # A cell's first paced piece waits like any other: at a 1 % share 0.05 s * 99 = 4.95 s from
    # when the sync process sees the spool. Unpaced, the points would be stored within about
    # 0.5 s (the sync process is already running and MLflow imported, thanks to the first cell).
    # Meanwhile the newest point of each metric goes ahead, once a second: what the MLflow UI
    # shows of the running run is fresh.
    monkeypatch.setenv("NBTRACK_SYNC_CPU_SHARE", "0.01")
    monkeypatch.setenv("NBTRACK_FLUSH_INTERVAL", "0.05")
    path = notebook(
        "import mlflow, nbtrack, time",
        "%%track -e warm-up\nnbtrack.log(x=1.0)",
        "assert nbtrack.wait(120)",
        "%%track -e held\n"
        "for i in range(3000):\n"
        "    nbtrack.log(loss=float(i))\n"
        "time.sleep(2.5)\n"
        "run_id = nbtrack.active_run().run_id\n"
        "held = [m.step for m in mlflow.MlflowClient().get_metric_history(run_id, 'loss')]",
        "assert nbtrack.wait(120)\nprint(held)",
    )
    nb = execute(path)
    assert text_of(nb.cells[4]).strip() == "[2999]"
    run = _only_run(client, "held")
    assert _steps(client, run.info.run_id, "loss") == list(range(3000))  # each point once


def _start_long_cell(kernel: Kernel, experiment: str) -> str:
    reply, _ = kernel.run("import nbtrack, time")
    assert reply["status"] == "ok"
    msg_id = kernel.submit(
        f"%%track -e {experiment}\n"
        "for i in range(1_000_000):\n"
        "    nbtrack.log(loss=float(i))\n"
        "    if i == 3000:\n"
        "        print('past 3000', flush=True)\n"
        "    if i % 100 == 0:\n"
        "        time.sleep(0.01)\n"
    )
    kernel.wait_for_output(msg_id, "past 3000")
    time.sleep(1.2)  # let the sender (every 0.5 s) spool a few more batches
    return msg_id


def _crash_mid_run(kernel: Kernel, spool_root: Path, experiment: str) -> None:
    """Lose the kernel and its sync process together (SIGKILL) in the middle of a run."""
    _start_long_cell(kernel, experiment)
    for pid in _worker_pids(spool_root):
        os.kill(pid, signal.SIGKILL)
    os.kill(kernel.pid, signal.SIGKILL)
    time.sleep(0.5)


def test_sigkilled_kernel_is_finished_by_its_sync_process(store, client, tmp_path, kernel):
    _start_long_cell(kernel, "killed")
    spool_root = tmp_path / "spool"
    # The sync process holds still while the kernel dies, so that what the kernel left in
    # its journal can be counted: exactly that must reach the store.
    (worker,) = _worker_pids(spool_root)
    os.kill(worker, signal.SIGSTOP)
    os.kill(kernel.pid, signal.SIGKILL)
    _wait_for(lambda: not kernel.km.is_alive(), 30, "the kernel to die")
    journaled, largest_line = _journaled(spool_root, "loss")
    os.kill(worker, signal.SIGCONT)
    _wait_for(lambda: not _worker_pids(spool_root), 120, "the sync process to finish and exit")
    run = _only_run(client, "killed")
    assert run.info.status == "FAILED"
    assert "died" in run.data.tags["nbtrack.end_reason"]
    steps = _steps(client, run.info.run_id, "loss")
    assert journaled > 3000
    assert steps == list(range(journaled))
    assert not any(spool_root.iterdir())  # nothing left behind
    # The loop logs ~5,000 points a flush; the kernel writes them in lines of a paced piece.
    assert 0 < largest_line <= LINE_POINTS


def test_nbtrack_sync_recovers_after_kernel_and_sync_process_died(store, client, tmp_path, kernel):
    spool_root = tmp_path / "spool"
    _crash_mid_run(kernel, spool_root, "crashed")
    copy = tmp_path / "spool-copy"
    shutil.copytree(spool_root, copy)

    journaled, _ = _journaled(spool_root, "loss")
    result = _sync_cli()
    assert "uploaded" in result.stdout
    run = _only_run(client, "crashed")
    assert run.info.status == "FAILED"
    steps = _steps(client, run.info.run_id, "loss")
    assert journaled > 3000
    assert steps == list(range(journaled))
    assert not list(spool_root.glob("*/*.spool"))

    # Replaying the same spool again (e.g. a crash right after upload) duplicates nothing.
    shutil.rmtree(spool_root)
    shutil.copytree(copy, spool_root)
    _sync_cli("--spool-dir", str(spool_root))
    assert _steps(client, run.info.run_id, "loss") == steps
    assert len(client.search_runs([run.info.experiment_id])) == 1


def _store_back_then_run(proxy: Any, kernel: Kernel, experiment: str) -> Any:
    """Bring the store back, wait until the kernel says everything is stored, return the run."""
    from mlflow import MlflowClient

    proxy.up()
    _, outputs = kernel.run("print('synced:', nbtrack.wait(120))")
    assert "synced: True" in str(outputs)
    return _only_run(MlflowClient(proxy.url), experiment)


@pytest.mark.server
def test_store_down_at_start_then_back(server_store, tmp_path):
    from mlflow import MlflowClient

    proxy = server_store
    proxy.down()
    kernel = Kernel(tmp_path)
    try:
        kernel.run("import nbtrack\n")
        msg_id = kernel.submit(
            "%%track -e offline -n while-down\nfor i in range(500):\n    nbtrack.log(loss=float(i))"
        )
        reply = kernel.wait_reply(msg_id)
        assert reply["status"] == "ok"
        shown = str(kernel.outputs(msg_id))
        assert "not reachable" in shown
        assert "offline" in shown
        run = _store_back_then_run(proxy, kernel, "offline")
    finally:
        kernel.shutdown()
    client = MlflowClient(proxy.url)
    assert run.info.run_name == "while-down"
    assert run.info.status == "FINISHED"
    assert run.data.tags["nbtrack.offline"] == "true"
    assert _steps(client, run.info.run_id, "loss") == list(range(500))
    assert "cell.py" in str([a.path for a in client.list_artifacts(run.info.run_id, "code")])


@pytest.mark.server
def test_mlflow_imported_after_the_store_went_away_holds_up_no_cell(server_store, tmp_path):
    # MLflow imported in a tracked cell makes the run MLflow's active run. That looked the run
    # up in the store: with the team's server gone since the run was created, the import
    # waited out MLflow's HTTP retries, minutes. The sync process now hands the kernel the run
    # as the store created it, and MLflow's calls in the cell go to the journal as usual.
    proxy = server_store
    go = tmp_path / "store-is-down"
    kernel = Kernel(tmp_path)
    try:
        kernel.run("import nbtrack, os, time")
        msg_id = kernel.submit(
            "%%track -e away -n attached\nnbtrack.log(loss=1.0)\n"
            "deadline = time.monotonic() + 60\n"
            "while nbtrack.active_run().run_id is None and time.monotonic() < deadline:\n"
            "    time.sleep(0.05)\n"
            "print('created:', nbtrack.active_run().run_id, flush=True)\n"
            f"while not os.path.exists({str(go)!r}):\n"
            "    time.sleep(0.05)\n"
            "started = time.monotonic()\n"
            "import mlflow\n"
            "run = mlflow.active_run()\n"
            "print('same run:', run.info.run_id == nbtrack.active_run().run_id)\n"
            "print('artifacts at:', run.info.artifact_uri)\n"
            "print('named:', run.data.tags.get('mlflow.runName'))\n"
            "mlflow.log_metric('direct', 2.0)\n"
            "print('import took', round(time.monotonic() - started, 1), 's')"
        )
        kernel.wait_for_output(msg_id, "created:")
        proxy.down()
        go.touch()
        reply = kernel.wait_reply(msg_id, timeout=60)
        shown = str(kernel.outputs(msg_id))
        assert reply["status"] == "ok", shown
        assert "same run: True" in shown
        run = _store_back_then_run(proxy, kernel, "away")
    finally:
        kernel.shutdown()
    # MLflow's run as the store returned it when creating it, its own tags included.
    assert f"artifacts at: {run.info.artifact_uri}" in shown
    assert "named: attached" in shown
    assert "NbtrackWarning" not in shown  # the sender read MLflow while the cell imported it
    assert run.info.status == "FINISHED"
    assert run.data.metrics == {"loss": 1.0, "direct": 2.0}


@pytest.mark.server
def test_store_outage_during_run_and_interrupt_while_cell_waits(
    server_store, tmp_path, monkeypatch
):
    from mlflow import MlflowClient

    proxy = server_store
    monkeypatch.setenv("NBTRACK_END_WAIT", "60")
    kernel = Kernel(tmp_path)
    try:
        reply, _ = kernel.run("import nbtrack, time")
        msg_id = kernel.submit(
            "%%track -e outage\nfor i in range(3000):\n    nbtrack.log(loss=float(i))\n"
            "    if i == 1000:\n        print('half way', flush=True)\n"
            "    if i % 100 == 0:\n        time.sleep(0.05)\nprint('loop done', flush=True)"
        )
        kernel.wait_for_output(msg_id, "half way")
        proxy.down()
        # The loop ends while the store is away; the cell then waits for the upload (up to
        # NBTRACK_END_WAIT) and the user interrupts that wait: the run must still be complete.
        kernel.wait_for_output(msg_id, "loop done")
        time.sleep(1.0)
        kernel.interrupt()
        reply = kernel.wait_reply(msg_id)
        assert reply["status"] == "ok"  # the cell itself completed
        run = _store_back_then_run(proxy, kernel, "outage")
    finally:
        kernel.shutdown()
    client = MlflowClient(proxy.url)
    assert run.info.status == "FINISHED"
    assert _steps(client, run.info.run_id, "loss") == list(range(3000))


@pytest.mark.server
def test_memory_stays_bounded_while_the_store_is_away(server_store, tmp_path, monkeypatch):
    proxy = server_store
    proxy.down()
    monkeypatch.setenv("NBTRACK_EXIT_WAIT", "0")
    kernel = Kernel(tmp_path)
    try:
        kernel.run(
            "import nbtrack, os\n"
            "def rss():\n"
            "    pages = int(open('/proc/self/statm').read().split()[1])\n"
            "    return pages * os.sysconf('SC_PAGE_SIZE')"
        )
        # Warm up first so imports do not count as growth.
        kernel.run("%%track -e bounded -n warm\nnbtrack.log(loss=0.0)")
        kernel.run("before = rss()")
        _, outputs = kernel.run(
            "%%track -e bounded -n big\nfor i in range(1_500_000):\n"
            "    nbtrack.log(loss=float(i), acc=0.5)\n"
            "import time; time.sleep(0.5)\n"
            "print('growth MB', (rss() - before) / 2**20)"
        )
        printed = "".join(o.get("text", "") for o in outputs if o["type"] == "stream")
        growth = float(printed.split("growth MB", 1)[1].split()[0])
        # 3 million points in a spool while the store is away; memory holds only the bounded
        # curves (2 x 200k points x 16 bytes) and the in-flight batch.
        assert growth < 120, printed
        spool_bytes = sum(p.stat().st_size for p in (tmp_path / "spool").glob("*/*.spool"))
        assert spool_bytes > 3_000_000 * 10  # the data is on disk, not in memory
        worker_rss = [
            int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for pid in _worker_pids(tmp_path / "spool")
        ]
        assert worker_rss
        assert max(worker_rss) < 400 * 2**20
    finally:
        kernel.shutdown()


def test_next_kernel_replays_spools_of_a_crashed_one(store, client, tmp_path, kernel):
    spool_root = tmp_path / "spool"
    _crash_mid_run(kernel, spool_root, "adopted")
    assert list(spool_root.glob("*/*.spool"))

    fresh = Kernel(tmp_path)
    try:
        reply, _ = fresh.run("%load_ext nbtrack")
        assert reply["status"] == "ok"
        _wait_for(
            lambda: not list(spool_root.glob("*/*.spool")), 120, "the orphaned spool to be replayed"
        )
    finally:
        fresh.shutdown()
    run = _only_run(client, "adopted")
    assert run.info.status == "FAILED"
    steps = _steps(client, run.info.run_id, "loss")
    assert len(steps) > 3000
    assert steps == list(range(len(steps)))
