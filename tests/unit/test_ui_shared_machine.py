"""MLflow UIs on a shared machine: nbtrack shows and stops only a UI it can prove is its own.

Another local user can take a UI's port before ``mlflow server`` binds it (its command line,
port included, is readable by everyone) and answer ``/health`` like MLflow does, or write a
registry entry that names their server, a ``javascript:`` address or someone else's process.
The stand-in attacker here is a forked child that becomes another user (the tests run as root)
and answers every request with ``OK``; the stand-in UI is a tiny HTTP server started through
nbtrack's own start-up code, so no test waits for MLflow.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbtrack import _platform
from nbtrack.errors import UiStartError
from nbtrack.tracking import resolve_uri
from nbtrack.ui import links, process, registry

# Answers every GET with OK, as MLflow answers /health, on the port given as its argument; one
# that cannot have its port hangs, as a stuck MLflow would.
_FAKE_UI = """
import http.server, sys, time
class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")
    def log_message(self, *args):
        pass
try:
    server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Ok)
except OSError:
    time.sleep(120)
    sys.exit(1)
server.serve_forever()
"""

_JAVASCRIPT = "javascript:fetch('/api/terminals',{method:'POST'})//"


def _fake_server_command(port: int) -> list[str]:
    return [sys.executable, "-c", _FAKE_UI, str(port)]


def _unused_uid() -> int:
    uid = 54321
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
        uid += 1


@contextlib.contextmanager
def _other_users_server(host: str = "127.0.0.1") -> Iterator[int]:
    """A server that another user runs on ``host``, answering every request with OK; yields
    its port."""
    if os.getuid() != 0:
        pytest.skip("needs root: the stand-in attacker becomes another user")
    uid = _unused_uid()
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the attacker: only os calls from here, and never back into pytest
        try:
            os.close(ready_read)
            os.setgid(uid)
            os.setuid(uid)
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sock.listen(8)
            os.write(ready_write, str(sock.getsockname()[1]).encode())
            os.close(ready_write)
            while True:
                conn, _ = sock.accept()
                conn.recv(4096)
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nOK")
                conn.close()
        finally:
            os._exit(0)
    os.close(ready_write)
    try:
        port = int(os.read(ready_read, 16) or b"0")
        os.close(ready_read)
        assert port, "the stand-in attacker could not listen"
        yield port
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _wait_for_exec(pid: int) -> None:
    """Until ``pid`` runs the stand-in UI rather than the copy of pytest that forked it."""
    deadline = time.monotonic() + 10
    while (_platform.process_command_line(pid) or [])[1:2] != [b"-c"]:
        assert time.monotonic() < deadline, "the stand-in UI did not start"
        time.sleep(0.05)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A store whose UI is the fake one, with the registry in the test's folder."""
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(process, "server_command", _fake_server_command)
    return resolve_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")


@pytest.fixture
def unrelated() -> Iterator[subprocess.Popen[bytes]]:
    """One of the user's own processes, leading its own process group, that is not a UI."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _forge_entry(uri: str, **fields: Any) -> Path:
    entry = registry.entry_path(uri)
    port = fields.get("port", 1)
    content = {
        "tracking_uri": uri,
        "store_key": registry.key(uri),
        "url": f"http://127.0.0.1:{port}/",
        "pid": 4242,
        "port": port,
        "log_path": str(entry.with_suffix(".log")),
        **fields,
    }
    entry.write_text(json.dumps(content), encoding="utf-8")
    return entry


# Item 1: a port another user took before the UI could bind it.


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])  # noqa: S104 - the attacker's bind
def test_a_port_another_user_took_is_not_given_as_the_ui(
    store: str, monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    with _other_users_server(host) as taken:
        ports = iter([taken])
        free = process._free_port
        monkeypatch.setattr(process, "_free_port", lambda: next(ports, None) or free())
        ui = process.ensure_ui(store, timeout=30)
        try:
            assert ui.port != taken
            assert process.find_ui(store) == ui
        finally:
            process.stop_ui(store)


def test_a_ui_whose_port_is_always_taken_fails_and_says_why(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _other_users_server() as taken:
        monkeypatch.setattr(process, "_free_port", lambda: taken)
        with pytest.raises(UiStartError, match="another user"):
            process.ensure_ui(store, timeout=30)
        assert process.find_ui(store) is None


def test_an_entry_is_reused_only_while_its_port_is_the_uis(store: str) -> None:
    with _other_users_server() as taken:
        # The UI's very process and command, but someone else listens on its port.
        command = process.server_command(taken)
        ui = subprocess.Popen(command, env=process.child_env(store), start_new_session=True)
        try:
            _wait_for_exec(ui.pid)
            _forge_entry(store, pid=ui.pid, port=taken)
            assert process.find_ui(store) is None
        finally:
            ui.kill()
            ui.wait()


# Item 2: registry entries are checked, not trusted as written.


def test_an_entry_naming_another_users_server_is_not_shown(
    store: str, unrelated: subprocess.Popen[bytes]
) -> None:
    with _other_users_server() as port:
        _forge_entry(store, pid=unrelated.pid, port=port)
        assert process.find_ui(store) is None
        assert links.run_url(store, "1", "abc") is None


def test_stop_ui_leaves_a_process_it_cannot_prove_is_its_ui(
    store: str, unrelated: subprocess.Popen[bytes]
) -> None:
    with _other_users_server() as port:
        _forge_entry(store, pid=unrelated.pid, port=port)
        assert process.stop_ui(store, timeout=2) is False
    assert unrelated.poll() is None


@pytest.mark.parametrize("owned", [True, False])
def test_a_ui_nbtrack_started_is_found_again_and_stopped(store: str, owned: bool) -> None:
    ui = process.ensure_ui(store, timeout=30, owned=owned)
    assert ui.url == f"http://127.0.0.1:{ui.port}/"
    assert process.find_ui(store) == ui
    assert process.stop_ui(store) is True
    assert not process.pid_alive(ui.pid)


@pytest.mark.parametrize(
    "fields",
    [
        {"url": _JAVASCRIPT},
        {"url": "http://evil.example/", "port": 80},
        {"url": "http://127.0.0.1:2/", "port": 1},
        {"pid": 0},
        {"pid": 1},
        {"pid": -1},
        {"pid": True},
        {"pid": "4242"},
        {"port": "4242", "url": "http://127.0.0.1:4242/"},
        {"port": 70000, "url": "http://127.0.0.1:70000/"},
        {"log_path": 7},
    ],
    ids=repr,
)
def test_an_entry_that_nbtrack_did_not_write_is_not_read(
    store: str, fields: dict[str, Any]
) -> None:
    entry = _forge_entry(store, **fields)
    assert registry.read_entry(entry) is None


def test_a_javascript_address_in_an_entry_is_never_a_link(
    store: str, unrelated: subprocess.Popen[bytes]
) -> None:
    with _other_users_server() as port:
        _forge_entry(store, pid=unrelated.pid, port=port, url=_JAVASCRIPT)
        assert links.run_url(store, "1", "abc") is None
    forged = registry.UiServer(tracking_uri=store, url=_JAVASCRIPT, pid=1, port=1, log_path="x")
    assert "javascript:" not in links.ui_link_html(forged)


def test_only_a_plain_path_is_a_link_through_jupyter() -> None:
    assert 'href="/user/alice/mlflow/"' in links.proxy_link_html("/user/alice/mlflow/")
    # Browsers read "/\\host" (and tabs or newlines inside it) as "//host": another site.
    for path in ("/\\evil.example/mlflow/", "/\t/evil.example/", "//evil.example/", _JAVASCRIPT):
        assert "href" not in links.proxy_link_html(path), path


def test_a_tracking_server_is_its_own_ui_and_nothing_is_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An MLflow server serves its UI itself. Starting `mlflow server` on it failed, and showed
    # the end of its log, the password of the store's URI included.
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(tmp_path / "state"))
    uri = "http://bob:S3CRET-pw@127.0.0.1:5077/?x=1"
    for ui in (process.ensure_ui(uri), process.find_ui(uri)):
        assert ui is not None
        assert ui.url == "http://127.0.0.1:5077/"
        assert "S3CRET" not in json.dumps(ui.__dict__)
        assert ui.run_url("1", "abc").startswith("http://127.0.0.1:5077/#/experiments/1/runs/abc")
    assert links.run_url(uri, "1", "abc") == process.find_ui(uri).run_url("1", "abc")
    assert not list((tmp_path / "state").glob("**/*.json"))


def test_the_end_of_a_failed_uis_log_is_shown_redacted(tmp_path: Path) -> None:
    uri = "postgresql://bob:S3CRET-pw@db.example/mlflow"
    tail = f"sqlalchemy.exc.OperationalError: could not connect to {uri}\n"
    message = process._failure(uri, process._Start.EXITED, 1, tmp_path / "ui.log", tail)
    assert "S3CRET" not in message
    assert "could not connect to" in message


def test_a_stores_ui_is_named_without_its_credentials() -> None:
    # A hash of a password is one to guess offline; and a new password is the same store.
    assert registry.key("postgresql://bob:old-pw@db/mlflow") == registry.key(
        "postgresql://bob:new-pw@db/mlflow"
    )
    assert registry.key("postgresql://db/mlflow") == registry.key("postgresql://bob:pw@db/mlflow")


def test_a_ui_slow_to_answer_once_is_found_again_later(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A loaded machine: /health did not answer within the probe's time, once. The entry of a
    # UI that was still running was deleted: the run's record got no link (seen in CI), and the
    # next %track_ui would have started a second UI.
    ui = process.ensure_ui(store, timeout=30)
    try:
        answers = process.answers_health
        monkeypatch.setattr(process, "answers_health", lambda _port: False)
        assert process.find_ui(store) is None
        monkeypatch.setattr(process, "answers_health", answers)
        assert process.find_ui(store) == ui
    finally:
        process.stop_ui(store)
