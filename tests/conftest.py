"""Shared fixtures: an isolated MLflow store and spool per test, real kernels, real servers."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kernel_helpers import Kernel

ROOT = Path(__file__).resolve().parents[1]

# Every kernel and subprocess started by the tests inherits these.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ.setdefault("NBTRACK_LIVE_PLOT", "0")
# Tests wait explicitly (nbtrack.wait) where they read results; keep cells snappy.
os.environ.setdefault("NBTRACK_END_WAIT", "2")


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite tracking store and spool folder; kernels started after this use them."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("NBTRACK_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.chdir(tmp_path)
    return uri


@pytest.fixture
def client(store: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=store)


@pytest.fixture
def kernel(store: str, tmp_path: Path) -> Iterator[Kernel]:
    k = Kernel(tmp_path)
    try:
        yield k
    finally:
        k.shutdown()


@pytest.fixture(params=["c", "python"])
def log(request: pytest.FixtureRequest) -> Any:
    """``nbtrack.log`` in each version: the C one (where built) and the Python one it falls
    back to, called directly so that both are held to the same tests."""
    from nbtrack import run as runs

    if request.param == "c":
        if runs._hotpath is None:
            pytest.skip("the C hot path is not built or NBTRACK_PURE_PYTHON is set")
        return runs.log
    return runs._log_py


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One `mlflow server` on PostgreSQL for the whole session (it takes ~20 s to start)."""
    from servers import MlflowServer, Postgres

    folder = tmp_path_factory.mktemp("server")
    postgres = Postgres()
    server = MlflowServer(postgres.uri, folder)
    try:
        yield server
    finally:
        server.stop()
        postgres.stop()


@pytest.fixture
def server_store(mlflow_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The shared server behind a proxy this test can switch off; kernels log through it."""
    from servers import SwitchableProxy

    proxy = SwitchableProxy(mlflow_server.port)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.url)
    monkeypatch.setenv("NBTRACK_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("NBTRACK_RETRY_MAX_S", "1")
    monkeypatch.chdir(tmp_path)
    yield proxy
    proxy.down()


@pytest.fixture(autouse=True)
def _no_stray_sync_processes(tmp_path: Path) -> Iterator[None]:
    """Sync processes outlive kernels by design; a test must not leave its own behind."""
    yield
    import signal

    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"nbtrack.sync.worker" in cmdline and any(str(tmp_path).encode() in a for a in cmdline):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)
