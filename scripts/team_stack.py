#!/usr/bin/env python3
"""A team's MLflow tracking server on one machine, as the README's "Team setup" describes it.

    scripts/team_stack.py start --dir ~/mlflow-team [--port 5000] [--workers 4] [--auth]
    scripts/team_stack.py stop --dir ~/mlflow-team
    scripts/team_stack.py user --dir ~/mlflow-team NAME     # --auth: a new user, prints a password
    scripts/team_stack.py token --dir ~/mlflow-team NAME    # --auth: a bearer token for a user

- PostgreSQL from Debian's packages (``apt-get install postgresql``) in a private cluster in
  ``DIR/postgres``, listening on 127.0.0.1 only, password-protected (the password is in
  ``DIR/pgpass``, private to you, and reaches the server through ``PGPASSFILE``, never a command
  line);
- ``mlflow server`` on it, with proxied artifact storage in ``DIR/artifacts`` and several
  workers;
- with ``--auth``, MLflow's basic-auth app (users and permissions in a second database), whose
  admin password is ``$MLFLOW_AUTH_ADMIN_PASSWORD`` or a generated one in ``DIR/admin-password``.
  Besides user names and passwords it accepts bearer tokens (``MLFLOW_TRACKING_TOKEN``) that
  ``token`` hands out (``team_auth.py``, MLflow's ``authorization_function`` hook).

The tests start the same stack with the same code (``tests/helpers/servers.py``). Run as root
(CI containers), PostgreSQL's commands run as the ``postgres`` user, which PostgreSQL requires,
and its cluster lives in a folder that user can reach. Only the Python standard library is used
here; MLflow runs from the interpreter that runs this script.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
DB_USER = "mlflow"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pg_bin() -> Path:
    """Debian's PostgreSQL programs (the newest installed version)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if not found:
        sys.exit("team_stack: PostgreSQL is missing: `sudo apt-get install postgresql`")
    return Path(found[-1]).parent


def _private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def _secret(path: Path) -> str:
    """A random secret kept in a private file, made on first use."""
    if not path.exists():
        _private(path, secrets.token_urlsafe(24))
    return path.read_text().strip()


def wait_http(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {process.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback
            return
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


class Postgres:
    """A private cluster: ``initdb`` once, then ``pg_ctl start/stop/restart``."""

    def __init__(self, folder: Path, port: int | None = None, data: Path | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.as_root = os.geteuid() == 0
        # As root the cluster must live where the `postgres` user can reach it.
        if data is None and self.as_root:
            data = Path(tempfile.mkdtemp(prefix="team-pg-")) / "data"
        self.data = data or folder / "postgres"
        self.passfile = folder / "pgpass"

    def uri(self, database: str) -> str:
        return f"postgresql+psycopg://{DB_USER}@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        password = secrets.token_urlsafe(24)
        _private(self.passfile, f"127.0.0.1:{self.port}:*:{DB_USER}:{password}\n")
        pwfile = self.data.parent / "initdb-password"
        self.data.parent.mkdir(parents=True, exist_ok=True)
        _private(pwfile, password + "\n")
        if self.as_root:
            shutil.chown(self.data.parent, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        try:
            self._run(
                "initdb",
                "-D",
                self.data,
                "-U",
                DB_USER,
                "-A",
                "scram-sha-256",
                f"--pwfile={pwfile}",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data.parent} -c listen_addresses=127.0.0.1"
        log = self.data.parent / "postgres.log"
        self._run("pg_ctl", "-D", self.data, "-w", "-l", log, "-o", options, "start")

    def create_database(self, name: str) -> None:
        self._run(
            "createdb",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            DB_USER,
            name,
            env={"PGPASSFILE": str(self.passfile)},
        )

    def restart(self) -> None:
        # With its log file named, as at start: otherwise the new server's output would hold
        # pg_ctl's pipe open, and this call would never return.
        log = self.data.parent / "postgres.log"
        self._run("pg_ctl", "-D", self.data, "-w", "-l", log, "-m", "fast", "restart")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", self.data, "-w", "-m", "fast", "stop")

    def _run(self, program: str, *args: object, env: dict[str, str] | None = None) -> None:
        command = [str(pg_bin() / program), *map(str, args)]
        if self.as_root:
            passfile = []
            if env:  # runuser resets the environment: hand the pass file over explicitly
                copy = self.data.parent / "pgpass"
                shutil.copy(self.passfile, copy)
                shutil.chown(copy, "postgres", "postgres")
                passfile = [f"PGPASSFILE={copy}"]
            command = ["runuser", "-u", "postgres", "--", "env", *passfile, *command]
        subprocess.run(  # noqa: S603 - PostgreSQL's own programs
            command,
            check=True,
            capture_output=True,
            cwd=self.data.parent,
            env={**os.environ, **(env or {})},
        )


class MlflowServer:
    """``mlflow server`` on the cluster, with proxied artifacts; the basic-auth app if asked."""

    def __init__(
        self,
        folder: Path,
        postgres: Postgres,
        port: int | None = None,
        workers: int = 4,
        auth: bool = False,
    ) -> None:
        self.folder = folder
        self.postgres = postgres
        self.port = port or free_port()
        self.workers = workers
        self.auth = auth
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            self.postgres.uri("mlflow"),
            "--artifacts-destination",
            str(self.folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        return [*command, "--app-name", "basic-auth"] if self.auth else command

    def environment(self) -> dict[str, str]:
        # MLflow's background job runner (GenAI evaluation jobs: eight more processes, ~0.7 GB)
        # is not needed to track training runs.
        env = {
            **os.environ,
            "PGPASSFILE": str(self.postgres.passfile),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        env.pop("MLFLOW_TRACKING_URI", None)
        if self.auth:
            env["MLFLOW_AUTH_CONFIG_PATH"] = str(self.folder / "auth.ini")
            env["TEAM_STACK_TOKENS"] = str(self.folder / "tokens.json")
            # The auth app's CSRF protection needs one secret shared by every worker.
            env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = _secret(self.folder / "flask-secret")
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
        return env

    def write_auth_config(self, admin_password: str) -> None:
        _private(
            self.folder / "auth.ini",
            "\n".join(
                [
                    "[mlflow]",
                    "default_permission = READ",
                    f"database_uri = {self.postgres.uri('mlflow_auth')}",
                    "admin_username = admin",
                    f"admin_password = {admin_password}",
                    "authorization_function = team_auth:authenticate",
                    "",
                ]
            ),
        )

    def start(self, timeout: float = 180) -> None:
        log = (self.folder / "mlflow-server.log").open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - our own command line
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.environment(),
            start_new_session=True,
        )
        log.close()
        wait_http(f"{self.url}/health", timeout=timeout, process=self.process)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """The whole server (every worker) at once, as a crash would take it."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


class Stack:
    """PostgreSQL and ``mlflow server``; its ports and paths kept in ``DIR/stack.json``."""

    def __init__(
        self, folder: Path, port: int | None = None, workers: int = 4, auth: bool = False
    ) -> None:
        self.folder = folder.expanduser().absolute()
        saved = self._saved()
        data = Path(str(saved["pg_data"])) if "pg_data" in saved else None
        self.postgres = Postgres(self.folder, saved.get("pg_port"), data)
        self.server = MlflowServer(
            self.folder,
            self.postgres,
            port or saved.get("port"),
            workers,
            auth or saved.get("auth", False),
        )

    @property
    def url(self) -> str:
        return self.server.url

    def _saved(self) -> dict[str, object]:
        with contextlib.suppress(OSError, ValueError):
            return dict(json.loads((self.folder / "stack.json").read_text()))
        return {}

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        new = not (self.postgres.data / "PG_VERSION").exists()
        if new:
            self.postgres.init()
        self.postgres.start()
        _private(
            self.folder / "stack.json",
            json.dumps(
                {
                    "pg_port": self.postgres.port,
                    "pg_data": str(self.postgres.data),
                    "port": self.server.port,
                    "auth": self.server.auth,
                }
            ),
        )
        if new:
            self.postgres.create_database("mlflow")
            if self.server.auth:
                self.postgres.create_database("mlflow_auth")
        if self.server.auth:
            self.server.write_auth_config(self.admin_password())
        self.server.start()

    def admin_password(self) -> str:
        given = os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD")
        if given:
            return given
        return _secret(self.folder / "admin-password")

    def stop(self) -> None:
        self.server.stop()
        self.postgres.stop()

    def add_user(self, name: str, password: str | None = None) -> str:
        """A user of the basic-auth app (the admin creates it); returns its password."""
        password = password or secrets.token_urlsafe(18)
        self._as_admin("/api/2.0/mlflow/users/create", {"username": name, "password": password})
        return password

    def add_token(self, name: str) -> str:
        """A bearer token for user ``name``; only its hash is kept (``DIR/tokens.json``)."""
        token = secrets.token_urlsafe(32)
        path = self.folder / "tokens.json"
        tokens = json.loads(path.read_text()) if path.exists() else {}
        tokens[hashlib.sha256(token.encode()).hexdigest()] = name
        _private(path, json.dumps(tokens))
        return token

    def _as_admin(self, endpoint: str, body: dict[str, str]) -> None:
        import base64

        request = urllib.request.Request(  # noqa: S310 - loopback
            self.url + endpoint,
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": "Basic "
                + base64.b64encode(f"admin:{self.admin_password()}".encode()).decode(),
            },
        )
        with urllib.request.urlopen(request, timeout=30):  # noqa: S310 - loopback
            pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("action", choices=["start", "stop", "user", "token"])
    parser.add_argument("name", nargs="?", help="user name (user, token)")
    parser.add_argument("--dir", default="~/mlflow-team", help="where the stack keeps its files")
    parser.add_argument("--port", type=int, help="the MLflow server's port (first start: 5000)")
    parser.add_argument("--workers", type=int, default=4, help="the MLflow server's workers")
    parser.add_argument("--auth", action="store_true", help="MLflow's basic-auth app")
    args = parser.parse_args()
    stack = Stack(Path(args.dir), args.port, args.workers, args.auth)
    if args.action == "start":
        if not args.port and not (stack.folder / "stack.json").exists():
            stack.server.port = 5000
        stack.start()
        # The server runs on in the background; `stop` ends it.
        pid = stack.server.process.pid if stack.server.process else 0
        (stack.folder / "mlflow-server.pid").write_text(str(pid))
        print(f"MLflow server (pid {pid}) on {stack.url}, PostgreSQL on port {stack.postgres.port}")
        print(f"export MLFLOW_TRACKING_URI={stack.url}")
        if stack.server.auth and not os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD"):
            print(f"admin password: in {stack.folder / 'admin-password'}")
    elif args.action == "stop":
        with contextlib.suppress(OSError, ValueError, ProcessLookupError):
            os.killpg(int((stack.folder / "mlflow-server.pid").read_text()), signal.SIGTERM)
        stack.postgres.stop()
        print("stopped")
    elif not args.name:
        parser.error(f"{args.action} needs a user name")
    elif args.action == "user":
        print(f"user {args.name}: password {stack.add_user(args.name)}")
    else:
        print(f"user {args.name}: MLFLOW_TRACKING_TOKEN={stack.add_token(args.name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
