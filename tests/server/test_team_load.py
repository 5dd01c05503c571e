"""The team server under load and through faults, with real kernels: eight kernels at once,
the server killed and restarted mid-run, PostgreSQL restarted under load. Every point is
counted: each arrives exactly once."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from helpers.kernels import output_text
from helpers.load import (
    assert_every_point_once,
    kernels,
    track_at_once,
    wait_stored,
    worker_logs,
)

# `load`: run before the rest (tests/conftest.py).
pytestmark = [pytest.mark.server, pytest.mark.load]


@pytest.fixture
def team(team_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The session's team server, straight (no proxy), for kernels started by the test."""
    from helpers.servers import forget_experiments
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", team_server.url)
    monkeypatch.setenv("NBTRACK_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("NBTRACK_RETRY_MAX_S", "2")
    monkeypatch.chdir(tmp_path)
    client = MlflowClient(tracking_uri=team_server.url)
    yield team_server, client
    forget_experiments(client)


def test_eight_kernels_at_once_every_point_once(team: Any, tmp_path: Path) -> None:
    _, client = team
    with kernels(tmp_path, 8) as started:
        track_at_once(started, tmp_path, "eight", 20_000)
        wait_stored(started, timeout=900)
    assert_every_point_once(client, "eight", 8, 20_000)


def _two_kernels_through(fault: Callable[[], None], tmp_path: Path, experiment: str) -> str:
    """Two kernels log ~10 s each (1,000 steps a second); ``fault`` strikes 3 s in. Returns
    their sync processes' logs (read before the kernels end: their session folders go then)."""
    with kernels(tmp_path, 2) as started:
        with ThreadPoolExecutor(1) as pool:
            logging = pool.submit(track_at_once, started, tmp_path, experiment, 10_000, 1.0)
            time.sleep(3)
            fault()
            logging.result()
        wait_stored(started)
        return worker_logs(tmp_path)


def test_server_killed_mid_run_and_restarted_every_point_once(team: Any, tmp_path: Path) -> None:
    stack, client = team

    def kill_and_restart() -> None:  # down for 5 s
        stack.server.kill()
        time.sleep(5)
        stack.server.start()

    logs = _two_kernels_through(kill_and_restart, tmp_path, "killed-server")
    assert "store unavailable" in logs  # the outage did reach the uploads
    assert_every_point_once(client, "killed-server", 2, 10_000)


def test_postgresql_restarted_under_load_every_point_once(team: Any, tmp_path: Path) -> None:
    stack, client = team
    _two_kernels_through(stack.postgres.restart, tmp_path, "pg-restart")
    assert_every_point_once(client, "pg-restart", 2, 10_000)


def test_server_down_when_the_cell_starts_told_once_then_synced(
    server_store: Any, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    proxy = server_store
    proxy.down()
    with kernels(tmp_path, 1) as (kernel,):
        shown = []
        for name in ("first", "second"):
            _, outputs = kernel.run(
                f"%%track -e down-at-start -n {name}\nfor i in range(500):\n"
                "    nbtrack.log(loss=float(i))"
            )
            shown.append(output_text(outputs))
        # The cells ran; the user was told once, in the first, that the store is away.
        assert [text.count("is not reachable") for text in shown] == [1, 0], shown
        proxy.up()
        wait_stored([kernel])
    client = MlflowClient(proxy.url)
    exp = client.get_experiment_by_name("down-at-start")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["first", "second"]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.tags["nbtrack.offline"] == "true"
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss"))
        assert steps == list(range(500))
