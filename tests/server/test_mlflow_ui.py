"""A real ``mlflow server`` started, found again and stopped by nbtrack.ui."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from nbtrack import tracking
from nbtrack.errors import UiStartError
from nbtrack.ui import links, process, registry

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("nbtrack-state")
    old = os.environ.get("NBTRACK_STATE_DIR")
    os.environ["NBTRACK_STATE_DIR"] = str(folder)
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    try:
        yield folder
    finally:
        if old is None:
            del os.environ["NBTRACK_STATE_DIR"]
        else:
            os.environ["NBTRACK_STATE_DIR"] = old


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """A SQLite store with one run: (uri, experiment id, run id)."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("ui-test")
    run = client.create_run(exp, run_name="shown-in-ui")
    client.log_param(run.info.run_id, "lr", "0.003")
    client.log_metric(run.info.run_id, "loss", 0.25, step=3)
    client.set_terminated(run.info.run_id)
    return uri, exp, run.info.run_id


@pytest.fixture(scope="module")
def ui(state: Path, logged: tuple[str, str, str]) -> Iterator[process.UiServer]:
    server = process.ensure_ui(logged[0])
    try:
        yield server
    finally:
        process.stop_ui(logged[0])


def test_ensure_ui_serves_the_store(ui: process.UiServer, logged: tuple[str, str, str]) -> None:
    _, exp, run_id = logged
    assert ui.url == f"http://127.0.0.1:{ui.port}/"
    assert requests.get(ui.url + "health", timeout=10).text.strip() == "OK"
    answer = requests.get(
        ui.url + "ajax-api/2.0/mlflow/runs/get", params={"run_id": run_id}, timeout=30
    )
    assert answer.status_code == 200
    run: dict[str, Any] = answer.json()["run"]
    assert run["info"]["run_name"] == "shown-in-ui"
    assert run["info"]["experiment_id"] == exp
    assert {"key": "lr", "value": "0.003"} in run["data"]["params"]
    assert ui.run_url(exp, run_id) == (
        f"{ui.url}#/experiments/{exp}/runs/{run_id}?workflowType=machine_learning"
    )


def test_second_call_reuses_the_running_ui(
    ui: process.UiServer, logged: tuple[str, str, str]
) -> None:
    assert process.ensure_ui(logged[0]) == ui
    assert process.find_ui(logged[0]) == ui


def test_another_process_finds_the_ui(
    ui: process.UiServer, logged: tuple[str, str, str], state: Path
) -> None:
    # `nbtrack ui --no-wait` in a fresh process prints the running UI's address, starts nothing.
    out = subprocess.run(
        [sys.executable, "-m", "nbtrack", "ui", "--tracking-uri", logged[0], "--no-wait"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == ui.url


def test_registry_is_private_and_stale_entries_are_dropped(
    ui: process.UiServer, state: Path, tmp_path: Path
) -> None:
    entries = list((state / "ui").glob("*.json"))
    assert entries
    assert all(entry.stat().st_mode & 0o077 == 0 for entry in entries)
    # An entry whose process is gone (a UI killed with its machine's reboot, say).
    uri = f"sqlite:///{tmp_path / 'gone.db'}"
    stale = registry.entry_path(uri)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale.write_text(
        json.dumps(
            {
                "tracking_uri": uri,
                "url": "http://127.0.0.1:9/",
                "pid": int(dead.stdout),
                "port": 9,
                "log_path": str(tmp_path / "x.log"),
            }
        )
    )
    assert process.find_ui(uri) is None
    assert not stale.exists()


def test_relative_and_absolute_sqlite_uris_name_one_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    expected = f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert tracking.resolve_uri("sqlite:///mlflow.db") == expected
    assert tracking.resolve_uri() == expected
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert tracking.resolve_uri() == "http://mlflow.example:5000"


def test_a_ui_that_cannot_start_reports_its_log(state: Path) -> None:
    # mlflow server exits at once on a store it has no plugin for; the error shows its log.
    bad = "nosuchscheme://store"
    with pytest.raises(UiStartError, match="end of its log") as error:
        process.ensure_ui(bad, timeout=120)
    assert "exited with status" in str(error.value)
    assert "unsupported URI" in str(error.value)
    assert process.find_ui(bad) is None


def test_link_html_escapes_everything(ui: process.UiServer) -> None:
    evil = process.UiServer(
        tracking_uri="x", url='http://127.0.0.1:1/"><script>', pid=1, port=1, log_path="x"
    )
    snippet = links.ui_link_html(evil, proxy_url="/user/a<b>/mlflow/")
    assert "<script>" not in snippet
    assert "&lt;b&gt;" in snippet
    assert "javascript:" not in links.ui_link_html(ui, proxy_url="javascript:alert(1)")
    assert ui.url in links.ui_link_html(ui)


def test_a_stores_password_stays_off_the_uis_command_line_and_out_of_nbtracks_files(
    state: Path, tmp_path: Path
) -> None:
    # Issue 11, items 6 and 9: every local user can read a process's command line.
    from helpers.servers import Database

    postgres = Database(tmp_path / "postgres")  # a real password, which the URI must carry
    uri, password = postgres.uri, postgres.password.encode()
    try:
        ui = process.ensure_ui(uri)
        try:
            assert requests.get(ui.url + "health", timeout=10).ok
            for proc in Path("/proc").iterdir():
                if proc.name.isdigit():
                    try:
                        cmdline = (proc / "cmdline").read_bytes()
                    except OSError:
                        continue
                    assert password not in cmdline, cmdline
            for path in (state / "ui").rglob("*"):
                assert password not in path.read_bytes(), path
            assert process.find_ui(uri) == ui
        finally:
            process.stop_ui(uri)
    finally:
        postgres.stop()
