"""Real servers for the tests: the team stack of ``scripts/team_stack.py`` (a private
PostgreSQL cluster and ``mlflow server`` on it with several workers, MLflow's basic-auth app when
asked), the very code the README's "Team setup" tells a person to run, and a TCP proxy in front
that can be switched off to play a network outage."""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from team_stack import DB_USER, Postgres, Stack, free_port

__all__ = [
    "Database",
    "Stack",
    "SwitchableProxy",
    "forget_experiments",
    "start_stack",
    "stop_stack",
]


class Database:
    """A throwaway PostgreSQL database in a private, password-protected cluster (the team
    stack's), for a test that needs a plain SQL URL: ``uri`` holds the password."""

    def __init__(self, folder: Path) -> None:
        self.postgres = Postgres(folder)
        self.postgres.init()
        self.postgres.start()
        self.postgres.create_database("mlflow")
        # The pass file's one line: host:port:database:user:password
        self.password = self.postgres.passfile.read_text().strip().rsplit(":", 1)[1]

    @property
    def uri(self) -> str:
        return self.postgres.uri("mlflow").replace(f"{DB_USER}@", f"{DB_USER}:{self.password}@", 1)

    def stop(self) -> None:
        self.postgres.stop()
        if self.postgres.as_root:  # the cluster then lives in a folder of its own
            shutil.rmtree(self.postgres.data.parent, ignore_errors=True)


def start_stack(folder: Path, workers: int = 2, auth: bool = False) -> Stack:
    """A team stack in ``folder``, started; ``stop_stack`` removes everything it made."""
    stack = Stack(folder, port=free_port(), workers=workers, auth=auth)
    stack.start()
    return stack


def stop_stack(stack: Stack) -> None:
    stack.stop()
    if stack.postgres.as_root:  # the cluster then lives in a folder of its own
        shutil.rmtree(stack.postgres.data.parent, ignore_errors=True)


@dataclass
class AuthStack:
    """The team stack with MLflow's basic-auth app, and its users' passwords."""

    stack: Stack
    passwords: dict[str, str]  # user -> password

    @property
    def url(self) -> str:
        return self.stack.url


def signed_in(stack: AuthStack, user: str) -> Any:
    """An MlflowClient signed in as ``user`` (credentials in the URI, as the tests' own)."""
    from mlflow import MlflowClient

    password = stack.passwords[user]
    return MlflowClient(tracking_uri=stack.url.replace("://", f"://{user}:{password}@"))


def forget_experiments(client: Any) -> None:
    """Free every experiment name a test used on a shared server, so that the next test starts
    with an empty store as it would on a fresh SQLite file: each experiment is renamed, then
    deleted (a deleted experiment keeps its name); runs of the Default experiment are deleted."""
    import uuid

    for experiment in client.search_experiments():
        if experiment.experiment_id == "0":
            for run in client.search_runs(["0"], max_results=1000):
                client.delete_run(run.info.run_id)
            continue
        client.rename_experiment(experiment.experiment_id, f"done-{uuid.uuid4().hex}")
        client.delete_experiment(experiment.experiment_id)


class SwitchableProxy:
    """Forwards a loopback port to the server; `down()` refuses and cuts every connection."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        if self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would leave the
            # port accepting connections into the backlog until that thread returns.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
