"""Shared fixtures: an isolated MLflow store and journal folder per test, real kernels, real
servers. Tests are grouped by what they need, and marked from their folder: ``unit`` (this
process only), ``kernel`` (real IPython kernels), ``server`` (real servers) and ``browser``
(JupyterLab in Chromium); run a group with e.g. ``-m "not browser"``."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.kernels import Kernel

# Every kernel and subprocess started by the tests inherits these.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
# Nothing is downloaded at run time: the framework tests build their models from configs.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("NBTRACK_LIVE_PLOT", "0")
# System metrics (on by default) would add system/* metrics to every run the tests read back;
# the tests of system metrics turn them on (tests/kernel/test_pytorch.py).
os.environ.setdefault("NBTRACK_SYSTEM_METRICS", "0")

_FOLDER_MARKS = {"kernel": "kernel", "server": "server", "browser": "browser"}

# The order tests run in: longest first. pytest-xdist's worksteal gives each worker a contiguous
# half of the collected list and lets a worker that runs dry take the tail of the other's queue,
# so what comes first runs first and what comes last is what evens the workers out at the end.
# Collected as named (browser, kernel, server, unit), the 2-minute load tests of server/ ran
# last while the other worker idled. So: the `load` tests (several kernels logging tens of
# thousands of points, a minute or two each), then browser/ (at the head of the first worker's
# half, which is never stolen: only that worker starts JupyterLab and Chromium), then server/,
# kernel/ and unit/ (hundreds of tests well under a second, the small change at the end). The
# collected order is kept within each group.
_RUN_ORDER = ("load", "browser", "server", "kernel", "unit")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "load: several real kernels logging tens of thousands of points at once; run first",
    )


def _run_rank(item: pytest.Item) -> tuple[int, int]:
    """Where ``item`` goes in ``_RUN_ORDER``: the load tests first (those of server/, the
    longest, first of all), then its folder's place."""
    folder = Path(str(item.fspath)).parent.name
    place = _RUN_ORDER.index(folder) if folder in _RUN_ORDER else len(_RUN_ORDER)
    return (0 if item.get_closest_marker("load") is not None else 1, place)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--serial-tests",
        choices=("with", "without", "only"),
        default="with",
        help="run the tests marked serial with the others (the default), leave them out, or run "
        "only them: scripts/test.sh runs the rest in two workers, then these alone",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        mark = _FOLDER_MARKS.get(folder)
        if mark is not None:
            item.add_marker(getattr(pytest.mark, mark))
    # An option rather than `-m`, so that a `-m` of the caller's still applies to both runs.
    serial_tests = config.getoption("--serial-tests")
    if serial_tests != "with":
        wanted = serial_tests == "only"
        kept, dropped = [], []
        for item in items:
            is_serial = item.get_closest_marker("serial") is not None
            (kept if is_serial == wanted else dropped).append(item)
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    items.sort(key=_run_rank)  # stable: each group keeps its collected order


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test module that sets ``STORES = ("sqlite", "server")`` runs each of its tests that use
    the ``store`` fixture once per store: MLflow's embedded SQLite default and the team server."""
    stores = getattr(metafunc.module, "STORES", None)
    if stores and "store" in metafunc.fixturenames:
        metafunc.parametrize("store", stores, indirect=True)


@pytest.fixture(scope="session")
def empty_sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite store, created and migrated by MLflow once per worker, for ``store`` to
    copy: MLflow's creation of a store (its schema migrations) takes ~1.8 s here, paid by a
    hundred tests that need a fresh store, not its creation. Creating one is tested where it
    matters (tests/kernel/test_concurrent_kernels.py, and wherever a test names its own)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("empty-store") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments(max_results=1)
    return path


def _fresh_sqlite_store(empty: Path, folder: Path) -> Path:
    """A copy of ``empty`` in ``folder``, as MLflow would have created it there: its Default
    experiment keeps its artifacts under the folder, not under the copied store's."""
    path = folder / "mlflow.db"
    shutil.copyfile(empty, path)
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
            (str(folder / "mlruns" / "0"),),
        )
    return path


@pytest.fixture
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh tracking store and journal folder; kernels started after this use them. SQLite
    (``mlflow.db`` in the test's folder, empty) unless the test is parametrised with "server":
    then the session's team server, emptied of the test's experiments afterwards."""
    on_server = getattr(request, "param", "sqlite") == "server"
    if on_server:
        uri = request.getfixturevalue("team_server").url
    else:
        empty = request.getfixturevalue("empty_sqlite_store")
        uri = f"sqlite:///{_fresh_sqlite_store(empty, tmp_path)}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("NBTRACK_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    yield uri
    if on_server:
        from helpers.servers import forget_experiments
        from mlflow import MlflowClient

        _stop_sync_processes(tmp_path)  # nothing may create experiments after this
        forget_experiments(MlflowClient(tracking_uri=uri))


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


@pytest.fixture(scope="session")
def team_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The README's team stack for the whole session: PostgreSQL and ``mlflow server`` with
    two workers and proxied artifacts, started by ``scripts/team_stack.py`` (~30 s)."""
    from helpers.servers import start_stack, stop_stack

    stack = start_stack(tmp_path_factory.mktemp("team"), workers=2)
    try:
        yield stack
    finally:
        stop_stack(stack)


@pytest.fixture
def server_store(team_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The team server behind a proxy this test can switch off; kernels log through it."""
    from helpers.servers import SwitchableProxy

    proxy = SwitchableProxy(team_server.server.port)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.url)
    monkeypatch.setenv("NBTRACK_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("NBTRACK_RETRY_MAX_S", "1")
    monkeypatch.chdir(tmp_path)
    yield proxy
    proxy.down()
    from helpers.servers import forget_experiments
    from mlflow import MlflowClient

    _stop_sync_processes(tmp_path)
    forget_experiments(MlflowClient(tracking_uri=team_server.url))


@pytest.fixture(autouse=True)
def _no_stray_sync_processes(tmp_path: Path) -> Iterator[None]:
    """Sync processes outlive kernels by design; a test must not leave its own behind."""
    yield
    _stop_sync_processes(tmp_path)


def _stop_sync_processes(folder: Path) -> None:
    from helpers.kernels import sync_process_pids

    for pid in sync_process_pids(folder):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
