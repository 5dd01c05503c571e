"""nbtrack's server extension in a real ``jupyter server`` process, read over HTTP.

One Jupyter server for the module (with jupyter-server-proxy serving MLflow at /mlflow/), a
real SQLite store filled with MlflowClient, and a broken store next to another notebook.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from nbtrack.record import parse_record
from nbtrack.server.runs import StoreError, check_reachable, describe_error, list_runs

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "nbtrack-test-token"
_GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
# No "Type: message" separator, so it cannot be split into an exception type and its message.
_LEAKY_ERROR = f"login failed with MLFLOW_TRACKING_PASSWORD=hunter2 and {_GITHUB_TOKEN}"


@dataclass(frozen=True)
class Server:
    url: str  # base URL, ending in /
    root: Path
    store: str
    run_ids: dict[str, str]  # what -> run id

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return _signed_in(method, self.url + path, **kwargs)


def _signed_in(method: str, url: str, **kwargs: Any) -> requests.Response:
    """A request to the Jupyter server with the test's token."""
    headers = {"Authorization": f"token {TOKEN}", **kwargs.pop("headers", {})}
    return requests.request(method, url, headers=headers, timeout=180, **kwargs)


def _fill_store(root: Path) -> tuple[str, dict[str, str]]:
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'nb' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    first = client.create_experiment("first")
    second = client.create_experiment("second")
    notebook = root / "nb" / "train.ipynb"

    def run(exp: str, source: str, name: str) -> str:
        run = client.create_run(exp, run_name=name, tags={"mlflow.source.name": source})
        return str(run.info.run_id)

    ids = {
        "absolute": run(first, str(notebook), "by-absolute-path"),
        "relative": run(second, "nb/train.ipynb", "by-relative-path"),
        "other": run(first, str(root / "nb" / "other.ipynb"), "other-notebook"),
    }
    run_id = ids["absolute"]
    client.log_param(run_id, "lr", 0.003)
    client.log_param(run_id, "api_key", "sk-not-for-the-page")
    client.set_tag(run_id, "mlflow.user", "someone")
    for step, loss in enumerate([1.0, 0.5, 0.25, float("nan")]):
        client.log_metric(run_id, "train/loss", loss, step=step)
    client.log_metric(run_id, "val_acc", 0.9, step=3)
    # What the kernel stores when a cell ends (record/metrics.py: best_values_tag).
    client.set_tag(run_id, "nbtrack.best", json.dumps({"train/loss": [0.25, 2]}))
    client.set_terminated(run_id)
    client.set_terminated(ids["relative"], status="FAILED")
    client.set_tag(ids["relative"], "nbtrack.error", "ValueError: bad batch")
    # Code outside nbtrack may tag a failure in any shape, secrets included.
    leaky = run(first, str(root / "nb" / "leaky.ipynb"), "leaky-error")
    client.set_tag(leaky, "nbtrack.error", _LEAKY_ERROR)
    client.set_terminated(leaky, status="FAILED")
    return uri, ids


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _jupyter(
    base: Path, root: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[str]:
    """A real Jupyter server on ``root`` (started in ``root / "nb"``, whose store the proxy's
    MLflow UI serves) with nbtrack's server extension and jupyter-server-proxy; its URL."""
    config = base / "config"
    config.mkdir(exist_ok=True)
    # The proxy entry as nbtrack's package registers it (entry point); given as config here
    # because the source tree under test is not installed.
    (config / "jupyter_server_config.py").write_text(
        "from nbtrack.ui.proxy import jupyter_server_proxy_config\n"
        "c.ServerProxy.servers = {'mlflow': jupyter_server_proxy_config()}\n"
        "c.ServerApp.jpserver_extensions = {'nbtrack': True,"
        " 'jupyter_server_proxy': True}\n"
    )
    full_env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_CONFIG_PATH": str(config),
        "JUPYTER_DATA_DIR": str(base / "data"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "IPYTHONDIR": str(base / "ipython"),
        "NBTRACK_STATE_DIR": str(base / "state"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        **(env or {}),
    }
    full_env.pop("MLFLOW_TRACKING_URI", None)
    port = _free_port()
    log = (base / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={root}",
            f"--IdentityProvider.token={TOKEN}",
            *args,
        ],
        cwd=root / "nb",  # the proxy's MLflow UI serves the store of the server's folder
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (base / "server.log").read_text()
            try:
                if requests.get(url + "api/status", params={"token": TOKEN}, timeout=5).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, (base / "server.log").read_text()
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()  # the server stops the MLflow UIs it started, the proxy its own
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("jupyter")
    root = base / "root"
    (root / "nb").mkdir(parents=True)
    (root / "nb" / "train.ipynb").write_text("{}")
    (root / "broken").mkdir()
    (root / "broken" / "mlflow.db").write_bytes(b"this is not an SQLite database " * 8)
    (root / "empty").mkdir()
    uri, ids = _fill_store(root)
    with _jupyter(base, root) as url:
        yield Server(url=url, root=root, store=uri, run_ids=ids)


def test_runs_endpoint_lists_the_notebooks_runs_as_records(server: Server) -> None:
    answer = server.get("nbtrack/api/runs", params={"path": "nb/train.ipynb"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["tracking_uri"] == server.store
    runs = body["runs"]
    # Both spellings of the notebook's path, from any experiment, newest first; not the other.
    assert [r["run"]["id"] for r in runs] == [
        server.run_ids["relative"],
        server.run_ids["absolute"],
    ]
    for record in runs:
        parse_record(record)  # the notebook's record schema, as the lab extension reads it
    failed, finished = runs
    assert failed["run"]["status"] == "FAILED"
    assert failed["error"]["type"] == "ValueError"
    assert finished["notebook"]["path"] == "nb/train.ipynb"
    assert finished["params"] == {"lr": "0.003"}
    loss = finished["metrics"]["train/loss"]
    assert (loss["last"], loss["last_step"]) == ("NaN", 3)
    # The best value from the run's nbtrack.best tag; for a loss it is also the minimum.
    assert (loss["min"], loss["best"], loss["goal"]) == (0.25, 0.25, "min")
    assert loss["max"] is None  # only a history would tell, and the listing reads none
    acc = finished["metrics"]["val_acc"]
    assert (acc["last"], acc["goal"], acc["best"]) == (0.9, "max", None)  # not in the tag
    # Chart panels as the kernel's records group them (the store keeps no metric order).
    assert sorted(finished["panels"]) == [["train/loss"], ["val_acc"]]
    assert failed["panels"] == []


# Security review, item 1: a listing costs one search, whatever the length of the histories.


def test_listing_runs_reads_no_metric_history(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    # A history may hold millions of points: every way to it goes through the store's method.
    reads: list[tuple[Any, ...]] = []
    read_history: Callable[..., Any] = SqlAlchemyStore.get_metric_history

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        reads.append((*args, *kwargs.values()))
        return read_history(self, *args, **kwargs)

    monkeypatch.setattr(SqlAlchemyStore, "get_metric_history", counted)
    runs = list_runs(
        server.store,
        [str(server.root / "nb" / "train.ipynb")],
        notebook_path="nb/train.ipynb",
        max_runs=200,
        ui=None,
    )
    assert [r["run"]["id"] for r in runs] == [server.run_ids["absolute"]]
    assert set(runs[0]["metrics"]) == {"train/loss", "val_acc"}
    assert reads == []


class _Failing(http.server.BaseHTTPRequestHandler):
    """A store that accepts connections and answers every request with a server error."""

    def do_GET(self) -> None:
        self.send_response(500)
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


class _Hanging(_Failing):
    """A store that accepts every request and answers none (then an error) until ``release``
    is set; ``most`` is how many requests it held at once."""

    release = threading.Event()
    lock = threading.Lock()
    held = 0
    most = 0

    def do_GET(self) -> None:
        cls = type(self)
        with cls.lock:
            cls.held += 1
            cls.most = max(cls.most, cls.held)
        try:
            cls.release.wait(120)
        finally:
            with cls.lock:
                cls.held -= 1
        super().do_GET()

    do_POST = do_GET


def test_refreshing_a_page_of_a_store_that_never_answers_holds_two_threads_at_most(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # A timed-out call goes on in its thread; refreshes must not add one each until the pool
    # (4 threads, shared by every notebook of the server) has none left.
    hanging = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hanging)
    hanging.daemon_threads = True
    threading.Thread(target=hanging.serve_forever, daemon=True).start()
    base = tmp_path_factory.mktemp("jupyter-hanging")
    root = base / "root"
    (root / "nb").mkdir(parents=True)
    uri = f"http://127.0.0.1:{hanging.server_port}/"
    _Hanging.release.clear()
    _Hanging.most = 0
    try:
        with _jupyter(
            base,
            root,
            f"--NbtrackServer.tracking_uri={uri}",
            "--NbtrackServer.store_timeout=1",
            env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
        ) as url:
            for _ in range(6):
                answer = _signed_in("GET", url + "nbtrack/api/runs", params={"path": "nb/x.ipynb"})
                assert answer.status_code == 503, answer.text
                assert "NbtrackServer.store_timeout" in answer.json()["reason"]
            deadline = time.monotonic() + 60
            while _Hanging.most == 0 and time.monotonic() < deadline:
                time.sleep(0.1)  # a loaded machine may take seconds to import MLflow
            assert 1 <= _Hanging.most <= 2
            # Answered before the server stops: its exit waits for the threads still calling.
            _Hanging.release.set()
    finally:
        _Hanging.release.set()
        hanging.shutdown()


def test_notebook_without_store_has_no_runs_and_gets_no_database(server: Server) -> None:
    answer = server.get("nbtrack/api/runs", params={"path": "empty/new.ipynb"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["runs"] == []
    assert not (server.root / "empty" / "mlflow.db").exists()


def test_unauthenticated_requests_are_refused(server: Server) -> None:
    for path in ("nbtrack/api/runs", "nbtrack/api/ui"):
        answer = requests.get(server.url + path, params={"path": "nb/train.ipynb"}, timeout=30)
        assert answer.status_code == 403
        assert "runs" not in answer.text


def test_post_without_xsrf_token_is_refused(server: Server) -> None:
    # A browser session: cookie login, as JupyterLab's page has it.
    session = requests.Session()
    session.get(server.url + "lab", params={"token": TOKEN}, timeout=30)
    assert session.cookies, "the login set no cookie"
    assert session.get(
        server.url + "nbtrack/api/ui", params={"path": "nb/train.ipynb"}, timeout=30
    ).ok
    answer = session.post(
        server.url + "nbtrack/api/ui", params={"path": "nb/train.ipynb"}, timeout=30
    )
    assert answer.status_code == 403
    assert answer.json()["reason"]


@pytest.mark.parametrize(
    ("path", "status"),
    [("", 400), ("../outside.ipynb", 403), ("/etc/passwd", 400), ("missing/x.ipynb", 404)],
)
def test_bad_paths_get_a_json_reason(server: Server, path: str, status: int) -> None:
    answer = server.get("nbtrack/api/runs", params={"path": path})
    assert answer.status_code == status
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.json()["reason"]


def test_broken_store_answers_503_with_a_reason(server: Server) -> None:
    answer = server.get("nbtrack/api/runs", params={"path": "broken/x.ipynb"})
    assert answer.status_code == 503
    assert "could not be read" in answer.json()["reason"]


def test_unreachable_network_store_is_reported_at_once() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(StoreError, match="unreachable") as error:
            check_reachable(f"http://user:secret@127.0.0.1:{port}/")
    assert "secret" not in str(error.value)


def test_ui_endpoint_starts_one_ui_and_then_finds_it(server: Server) -> None:
    params = {"path": "nb/train.ipynb"}
    before = server.get("nbtrack/api/ui", params=params)
    assert before.json()["url"] is None
    started = server.post("nbtrack/api/ui", params=params)
    assert started.status_code == 200, started.text
    url = started.json()["url"]
    assert url.startswith("http://127.0.0.1:")
    assert server.post("nbtrack/api/ui", params=params).json()["url"] == url
    assert server.get("nbtrack/api/ui", params=params).json()["url"] == url
    runs = server.get("nbtrack/api/runs", params=params).json()
    assert runs["ui_url"] == url
    assert runs["runs"][0]["ui_url"].startswith(url + "#/experiments/")
    run_id = server.run_ids["absolute"]
    answer = requests.get(url + "ajax-api/2.0/mlflow/runs/get", params={"run_id": run_id},
                          timeout=30)  # fmt: skip
    assert answer.json()["run"]["info"]["run_name"] == "by-absolute-path"


def test_mlflow_ui_loads_through_the_jupyter_proxy(server: Server) -> None:
    # The notebook's store is the one the proxy serves (the server runs in nb/).
    proxy_url = server.get("nbtrack/api/ui", params={"path": "nb/train.ipynb"}).json()
    assert proxy_url["proxy_url"] == "/mlflow/"
    page = server.get("mlflow/")  # starts MLflow behind the proxy on first use
    assert page.status_code == 200, page.text[:2000]
    assert "<title>MLflow</title>" in page.text
    asset = page.text.split('src="', 1)[1].split('"', 1)[0]  # relative: static-files/...
    assert server.get("mlflow/" + asset).status_code == 200
    # The UI's own API call, as its JavaScript makes it (POST, relative URL, JSON body).
    search = server.post(
        "mlflow/ajax-api/2.0/mlflow/runs/search",
        data=json.dumps({"experiment_ids": ["1", "2"], "max_results": 10}),
        headers={"Content-Type": "application/json", "Origin": server.url.rstrip("/")},
    )
    assert search.status_code == 200, search.text
    names = {r["info"]["run_name"] for r in search.json()["runs"]}
    assert {"by-absolute-path", "by-relative-path"} <= names
    # Not reachable without Jupyter's login.
    assert requests.get(server.url + "mlflow/", timeout=30, allow_redirects=False).status_code in (
        302,
        403,
    )


# Issue 11, item 10: paths, stores created by reading, and what a 503 tells.


@pytest.mark.parametrize("path", [".", "nb/..", "./empty/.."])
def test_a_folder_path_names_that_folder_not_the_one_above(server: Server, path: str) -> None:
    answer = server.get("nbtrack/api/runs", params={"path": path})
    assert answer.status_code == 200, answer.text
    assert answer.json()["tracking_uri"] == f"sqlite:///{server.root / 'mlflow.db'}"
    for inside in ("nb/.", "nb/sub/.."):
        answer = server.get("nbtrack/api/runs", params={"path": inside})
        assert answer.json()["tracking_uri"] == server.store


def test_no_request_creates_a_store(server: Server) -> None:
    for path in (".", "empty/new.ipynb", "empty"):
        assert server.get("nbtrack/api/runs", params={"path": path}).status_code == 200
        assert server.get("nbtrack/api/ui", params={"path": path}).status_code == 200
        refused = server.post("nbtrack/api/ui", params={"path": path})
        assert refused.status_code == 404
        assert "run a tracked cell" in refused.json()["reason"]
    for folder in (server.root.parent, server.root, server.root / "empty"):
        assert not (folder / "mlflow.db").exists(), folder


def test_a_corrupt_store_answers_503_without_sql_or_paths(server: Server) -> None:
    reason = server.get("nbtrack/api/runs", params={"path": "broken/x.ipynb"}).json()["reason"]
    assert "could not be read" in reason
    assert "broken/mlflow.db" in reason  # which store: named under the server's root
    assert "file is not a database" in reason
    internals = ("SQL", "SELECT", "sqlite_master", "sqlalche.me", tempfile.gettempdir())
    for internal in (*internals, str(server.root)):
        assert internal not in reason


def test_an_error_tag_without_a_type_is_served_redacted_and_typed(server: Server) -> None:
    answer = server.get("nbtrack/api/runs", params={"path": "nb/leaky.ipynb"})
    assert answer.status_code == 200, answer.text
    (record,) = answer.json()["runs"]
    parse_record(record)  # error.type is a string in the record schema
    error = record["error"]
    assert isinstance(error["type"], str)
    assert error["message"].startswith("login failed with MLFLOW_TRACKING_PASSWORD=<redacted>")
    for secret in ("hunter2", _GITHUB_TOKEN):
        assert secret not in answer.text


@pytest.mark.parametrize(
    "error",
    [
        OSError("unable to open /home/alice/My Projects/secret-client/mlflow.db for reading"),
        PermissionError(13, "Permission denied", "/home/alice/My Projects/secret-client/mlflow.db"),
        OSError("no store at sqlite:////home/alice/My Projects/secret-client/mlflow.db, sorry"),
    ],
)
def test_an_error_reason_hides_a_path_with_spaces_whole(error: OSError) -> None:
    reason = describe_error(error)
    assert "<path>" in reason or "sqlite://" in reason
    for part in ("alice", "My", "Projects", "secret-client", "mlflow.db"):
        assert part not in reason, reason
    assert reason.startswith(type(error).__name__)


def test_an_error_reason_keeps_percent_signs_as_they_are(server: Server) -> None:
    answer = server.get("nbtrack/api/runs", params={"path": "nb/%2e%2e/x.ipynb"})
    assert answer.status_code == 404
    assert "'nb/%2e%2e'" in answer.json()["reason"]


def test_a_store_error_answers_503_without_the_uris_credentials(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    failing = http.server.HTTPServer(("127.0.0.1", 0), _Failing)
    threading.Thread(target=failing.serve_forever, daemon=True).start()
    base = tmp_path_factory.mktemp("jupyter-credentials")
    root = base / "root"
    (root / "nb").mkdir(parents=True)
    uri = f"http://alice:PW-s3cr3t-77@127.0.0.1:{failing.server_port}/"
    try:
        with _jupyter(
            base,
            root,
            f"--NbtrackServer.tracking_uri={uri}",
            env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
        ) as url:
            answer = _signed_in("GET", url + "nbtrack/api/runs", params={"path": "nb/x.ipynb"})
        assert answer.status_code == 503, answer.text
        reason = answer.json()["reason"]
        assert f"127.0.0.1:{failing.server_port}" in reason
        assert "PW-s3cr3t-77" not in reason
        assert "alice" not in reason
        assert "PW-s3cr3t-77" not in (base / "server.log").read_text()
    finally:
        failing.shutdown()


# Issue 11, item 9: an MLflow UI the server started has no login; it ends with the server.


def test_the_ui_a_server_started_stops_with_the_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    base = tmp_path_factory.mktemp("jupyter-ui")
    root = base / "root"
    (root / "nb").mkdir(parents=True)
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=f"sqlite:///{root / 'nb' / 'mlflow.db'}").create_experiment("x")
    with _jupyter(base, root) as url:
        started = requests.post(
            url + "nbtrack/api/ui",
            params={"path": "nb/train.ipynb"},
            headers={"Authorization": f"token {TOKEN}"},
            timeout=180,
        )
        assert started.status_code == 200, started.text
        ui = started.json()["url"]
        assert requests.get(ui + "health", timeout=10).ok
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(ui + "health", timeout=2)
        except requests.ConnectionError:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the MLflow UI outlived the Jupyter server that started it")


# Found by a review (issue 10's thirteenth session).


def test_a_database_without_mlflows_tables_is_read_as_no_store_and_left_as_it_is(
    server: Server,
) -> None:
    # An empty mlflow.db (or someone's own SQLite file of that name) got MLflow's tables
    # created in it by a page that only listed runs.
    import sqlite3

    blank, own = server.root / "blank", server.root / "own"
    blank.mkdir()
    own.mkdir()
    (blank / "mlflow.db").write_bytes(b"")
    with sqlite3.connect(own / "mlflow.db") as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    before = {f: (f / "mlflow.db").read_bytes() for f in (blank, own)}
    for folder in before:
        answer = server.get("nbtrack/api/runs", params={"path": f"{folder.name}/x.ipynb"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["runs"] == []
    assert {f: (f / "mlflow.db").read_bytes() for f in before} == before


def test_paths_that_cannot_be_followed_get_a_4xx_reason(server: Server) -> None:
    loop = server.root / "loop"
    loop.symlink_to(loop)
    for path in ("a" * 300 + "/x.ipynb", "loop/x.ipynb"):
        answer = server.get("nbtrack/api/runs", params={"path": path})
        assert answer.status_code == 404, (path[:20], answer.text)
        assert answer.json()["reason"]


def test_a_malformed_tracking_uri_is_a_store_error_without_credentials() -> None:
    with pytest.raises(StoreError, match="cannot be read") as error:
        check_reachable("http://user:secret@[::1")
    assert "secret" not in str(error.value)
