"""Which MLflow UI link a kernel offers first: the one through its Jupyter server (behind its
login) when that server serves the kernel's store through jupyter-server-proxy (issue 11,
item 9). A real process plays the Jupyter server: its runtime file, folder and environment are
what the kernel reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbtrack.tracking import resolve_uri
from nbtrack.ui.links import proxy_link_html
from nbtrack.ui.proxy import kernel_proxy_url


@pytest.fixture
def server_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A stand-in Jupyter server process (pid, folder, environment) with its runtime file."""
    folder = tmp_path / "served"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    server = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], cwd=folder, env=env
    )
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    (runtime / f"jpserver-{server.pid}.json").write_text(
        json.dumps({"pid": server.pid, "base_url": "/user/alice/", "root_dir": str(folder)})
    )
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("JPY_PARENT_PID", str(server.pid))
    try:
        yield folder
    finally:
        server.kill()
        server.wait()


def test_the_jupyter_route_is_offered_for_the_store_the_server_proxies(server_folder):
    store = resolve_uri(f"sqlite:///{server_folder / 'mlflow.db'}")
    assert kernel_proxy_url(store) == "/user/alice/mlflow/"
    assert 'href="/user/alice/mlflow/"' in proxy_link_html("/user/alice/mlflow/")


def test_no_jupyter_route_for_another_store(server_folder, tmp_path):
    assert kernel_proxy_url(resolve_uri(f"sqlite:///{tmp_path / 'other' / 'mlflow.db'}")) is None


def test_no_jupyter_route_when_the_kernel_was_not_started_by_a_jupyter_server(
    server_folder, monkeypatch
):
    store = resolve_uri(f"sqlite:///{server_folder / 'mlflow.db'}")
    monkeypatch.setenv("JPY_PARENT_PID", str(os.getpid()))  # a process with no runtime file
    assert kernel_proxy_url(store) is None
    monkeypatch.delenv("JPY_PARENT_PID")
    assert kernel_proxy_url(store) is None
