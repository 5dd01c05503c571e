"""`%track_ui` in a real kernel: starts an MLflow UI for the kernel's store and links it, and
records made afterwards link their run in it; the UI ends with its kernel; under a Jupyter
server that proxies the store's UI, the link through Jupyter comes first and nothing starts."""

from __future__ import annotations

import json
import os
import re
import signal
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from helpers.kernels import Kernel, wait_for

from nbtrack import _platform
from nbtrack.tracking import resolve_uri

pytestmark = [pytest.mark.kernel, pytest.mark.server]

RECORD = "application/vnd.nbtrack.run+json"


def test_track_ui_starts_a_ui_and_records_link_into_it(store, tmp_path, monkeypatch):
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(tmp_path / "state"))
    kernel = Kernel(tmp_path)
    try:
        reply, outputs = kernel.run("%load_ext nbtrack\n%track_ui", timeout=180)
        assert reply["status"] == "ok", reply
        shown = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
        match = re.search(r'href="(http://127\.0\.0\.1:\d+/)"', shown)
        assert match, shown
        url = match.group(1)
        with urllib.request.urlopen(url + "health", timeout=10) as answer:  # noqa: S310 - loopback
            assert answer.status == 200

        # A second call reuses the running UI instead of starting another.
        _, outputs = kernel.run("%track_ui")
        assert url in "".join(o.get("data", {}).get("text/html", "") for o in outputs)

        _, outputs = kernel.run("%%track -e linked\nnbtrack.log(loss=1.0)")
        record = next(o["data"][RECORD] for o in outputs if RECORD in o.get("data", {}))
        assert record["ui_url"].startswith(f"{url}#/experiments/")
        # In MLflow's model-training view, which MLflow 3.17's UI reads from the address.
        assert record["ui_url"].endswith(
            f"/runs/{record['run']['id']}?workflowType=machine_learning"
        )
    finally:
        kernel.shutdown()
    # Issue 11, item 9: a UI open to every local user does not outlive its kernel.
    wait_for(lambda: not _answers(url), 60, "the MLflow UI to stop with its kernel")
    assert not list((tmp_path / "state" / "ui").glob("*.json"))


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "health", timeout=5):  # noqa: S310 - loopback
            return True
    except (urllib.error.URLError, OSError):
        return False


def test_a_ui_stops_when_its_kernel_is_killed(store, tmp_path, monkeypatch):
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(tmp_path / "state"))
    kernel = Kernel(tmp_path)
    try:
        _, outputs = kernel.run("%load_ext nbtrack\n%track_ui", timeout=180)
        shown = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
        match = re.search(r'href="(http://127\.0\.0\.1:\d+/)"', shown)
        assert match, shown
        url = match.group(1)
        (entry,) = (tmp_path / "state" / "ui").glob("*.json")
        pid = json.loads(entry.read_text())["pid"]
        os.kill(kernel.pid, signal.SIGKILL)  # no atexit, no cleanup: only the closed pipe tells
        wait_for(lambda: not _answers(url), 60, "the MLflow UI to stop with its killed kernel")
        wait_for(lambda: not _platform.process_alive(pid, None), 30, "the UI's processes to end")
    finally:
        kernel.shutdown()


def test_under_a_proxying_jupyter_server_the_link_goes_through_jupyter(
    store, tmp_path, monkeypatch
):
    # The kernel's parent (this process, as jupyter_client's JPY_PARENT_PID says) plays the
    # Jupyter server: a runtime file names it, jupyter-server-proxy and nbtrack's `mlflow`
    # entry are installed, and it proxies the store of its folder (or its environment's).
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    (runtime / f"jpserver-{os.getpid()}.json").write_text(
        json.dumps({"pid": os.getpid(), "base_url": "/user/alice/"})
    )
    seen = _platform.process_cwd_and_environ(os.getpid())
    assert seen is not None
    folder, environment = seen
    served = resolve_uri(environment.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db", folder)
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(tmp_path / "state"))
    kernel = Kernel(Path(tmp_path), env={"JUPYTER_RUNTIME_DIR": str(runtime),
                                         "MLFLOW_TRACKING_URI": served})  # fmt: skip
    try:
        reply, outputs = kernel.run("%load_ext nbtrack\n%track_ui", timeout=180)
        assert reply["status"] == "ok", reply
        shown = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
        assert 'href="/user/alice/mlflow/"' in shown
        assert "127.0.0.1" not in shown
        assert not list((tmp_path / "state" / "ui").glob("*.json"))  # no UI was started
        _, outputs = kernel.run("%track_ui --local", timeout=180)
        shown = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
        assert re.search(r'href="http://127\.0\.0\.1:\d+/"', shown), shown
    finally:
        kernel.shutdown()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a folder to another user")
def test_a_ui_that_cannot_start_is_one_line_that_says_why(store, tmp_path, monkeypatch):
    # A registry folder another user owns: the UI is refused before anything starts, and
    # %track_ui says so in one line (a UsageError), not with a traceback of nbtrack's code.
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, 65534, 65534)
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(state))
    kernel = Kernel(tmp_path)
    try:
        reply, _ = kernel.run("%load_ext nbtrack\n%track_ui --local", timeout=180)
    finally:
        kernel.shutdown()
    assert reply["status"] == "error", reply
    assert reply["ename"] == "UsageError", reply
    assert "NBTRACK_STATE_DIR" in reply["evalue"], reply
