"""A real JupyterLab server and headless Chromium for browser tests (the fixtures are in
conftest.py; this module has the pieces tests import).

One JupyterLab server per test session (starting one costs seconds), isolated from the user's
own Jupyter setup: its config, data, runtime, settings, workspace and IPython folders are temp
folders, so only what is installed in this environment (sys-prefix: nbtrack's lab extension
and server extension) is loaded. Tests get the `lab` fixture::

    def test_something(lab: Lab, page: Page) -> None:
        lab.write_notebook("demo.ipynb", cells)
        lab.open_notebook(page, "demo.ipynb")
        lab.screenshot(page, "demo")

Screenshots and the server log go to ``$NBTRACK_TEST_ARTIFACTS`` (default ``tests/artifacts``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import nbformat
from playwright.sync_api import Page

# nbformat ships no type hints.
nbf: Any = nbformat.v4
nbf_write: Any = nbformat.write

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("NBTRACK_CHROMIUM", "/usr/bin/chromium")
# Without the networking flags Chromium keeps trying to reach Google's hosts.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START_TIMEOUT_S = 90
# A saved notebook's outputs appear 4-5 s after opening on a loaded 2-core machine.
RENDER_TIMEOUT_MS = 60_000


def artifacts_dir() -> Path:
    """Where screenshots and logs of browser tests go (created on first use)."""
    path = Path(os.environ.get("NBTRACK_TEST_ARTIFACTS", ROOT / "tests" / "artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Lab:
    """A running JupyterLab server; paths are relative to `root_dir`."""

    base_url: str
    token: str
    root_dir: Path
    env: dict[str, str] = field(repr=False)

    def url(self, path: str = "lab", **query: str) -> str:
        """Absolute URL of a server path, with the token so the page gets logged in."""
        params = "&".join(f"{k}={quote(v)}" for k, v in {**query, "token": self.token}.items())
        return f"{self.base_url}{path.lstrip('/')}?{params}"

    def write_notebook(self, path: str, cells: list[Any], **metadata: Any) -> Path:
        """Save a notebook made of nbformat cells under the root folder; return its file path.

        Its kernelspec names no installed kernel, so opening it starts none (see
        `open_notebook`); pass ``kernelspec=...`` for a notebook that should run.
        """
        nb = nbf.new_notebook()
        nb.cells = cells
        nb.metadata.update(
            {
                # JupyterLab falls back to any kernel of the same language, so name none.
                "kernelspec": {
                    "name": "nbtrack-test-no-kernel",
                    "display_name": "no kernel",
                    "language": "nbtrack-test-none",
                },
            }
        )
        nb.metadata.update(metadata)
        target = self.root_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        nbf_write(nb, target)
        return target

    def open_notebook(self, page: Page, path: str, *, outputs: int = 1) -> None:
        """Open a notebook in a fresh workspace (``?reset``) and wait for its outputs.

        Waits until at least `outputs` output areas are rendered. If JupyterLab asks which
        kernel to use (the notebook's kernel is not installed), it answers "No Kernel".
        """
        page.goto(self.url(f"lab/tree/{quote(path)}", reset=""))
        page.wait_for_selector(".jp-NotebookPanel", timeout=RENDER_TIMEOUT_MS)
        dialog_button = page.locator(".jp-Dialog button", has_text="No Kernel")
        outputs_shown = page.locator(".jp-NotebookPanel .jp-OutputArea-output")
        deadline = time.monotonic() + RENDER_TIMEOUT_MS / 1000
        while time.monotonic() < deadline:
            if dialog_button.count() > 0 and dialog_button.first.is_visible():
                dialog_button.first.click()
            if outputs_shown.count() >= outputs:
                break
            page.wait_for_timeout(200)
        else:
            self.screenshot(page, f"timeout-{Path(path).stem}")
            msg = f"{path}: fewer than {outputs} outputs rendered within {RENDER_TIMEOUT_MS} ms"
            raise AssertionError(msg)
        # The dialog may come after the outputs.
        page.wait_for_timeout(300)
        if dialog_button.count() > 0 and dialog_button.first.is_visible():
            dialog_button.first.click()

    def run_command(self, page: Page, command: str, args: dict[str, Any] | None = None) -> Any:
        """Execute a JupyterLab command in the page (the app is exposed for tests)."""
        return page.evaluate(
            "([id, args]) => window.jupyterapp.commands.execute(id, args)", [command, args or {}]
        )

    def screenshot(self, page: Page, name: str) -> Path:
        """Save a screenshot of the whole page under the artifacts folder."""
        target = artifacts_dir() / f"{name}.png"
        page.screenshot(path=str(target))
        return target

    def request(
        self, method: str, path: str, *, token: bool = True, body: bytes | None = None
    ) -> tuple[int, Any]:
        """Plain HTTP to the server (no browser): status code and JSON body (or text)."""
        headers = {"Authorization": f"token {self.token}"} if token else {}
        req = urllib.request.Request(  # noqa: S310 - always our own http://127.0.0.1 server
            self.base_url + path.lstrip("/"), method=method, headers=headers, data=body
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as response:  # noqa: S310
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    def running_kernels(self) -> list[dict[str, Any]]:
        """The kernels the server runs right now."""
        status, kernels = self.request("GET", "api/kernels")
        assert status == 200, kernels
        return list(kernels)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _isolated_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    for var, sub in {
        "JUPYTER_CONFIG_DIR": "config",
        "JUPYTER_DATA_DIR": "data",
        "JUPYTER_RUNTIME_DIR": "runtime",
        "JUPYTERLAB_SETTINGS_DIR": "settings",
        "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
        "IPYTHONDIR": "ipython",
    }.items():
        (home / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(home / sub)
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    # Kernels started from the page behave as a user's: live plot on (JupyterLab tells them
    # the notebook's path), spools in this server's own folder.
    env.pop("NBTRACK_LIVE_PLOT", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    env["NBTRACK_SPOOL_DIR"] = str(home / "spool")
    env.pop("JUPYTER_PATH", None)
    env.pop("JUPYTER_CONFIG_PATH", None)
    built = os.environ.get("NBTRACK_TEST_LABEXTENSION")
    if built:
        # A lab extension built in another checkout (`jlpm build` there, then point this at
        # its labextension/dist): found first on JUPYTER_PATH, so it wins over the installed one.
        extensions = home / "extra" / "labextensions"
        extensions.mkdir(parents=True, exist_ok=True)
        link = extensions / "nbtrack"
        if not link.exists():
            link.symlink_to(Path(built).resolve(), target_is_directory=True)
        env["JUPYTER_PATH"] = str(home / "extra")
    # Kernels and the server's own commands come from this environment.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # The news pop-up and update check would cover screenshots (and need network).
    notification = home / "settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True, exist_ok=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    return env


def _check_extensions_found(env: dict[str, str]) -> None:
    """Fail early, with the fix, when the isolated server would not load nbtrack."""
    listing = subprocess.run(
        [sys.executable, "-m", "jupyterlab.labextensions", "list"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    text = listing.stdout + listing.stderr
    if "nbtrack v" not in text or "enabled" not in text.split("nbtrack v", 1)[1].splitlines()[0]:
        msg = (
            "nbtrack's lab extension is not installed in this environment "
            f"({sys.prefix}); run `pip install -e .` in the repository first.\n{text}"
        )
        raise RuntimeError(msg)


@dataclass
class PageEvents:
    """What a page did that a test may need to assert never happened."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@contextlib.contextmanager
def running_lab(home: Path, root: Path, *, check_nbtrack: bool = True) -> Iterator[Lab]:
    """Start JupyterLab on a free 127.0.0.1 port with Jupyter folders under `home`, serving
    `root`; stop it on exit. Its log is ``jupyterlab.log`` in the artifacts folder.
    ``check_nbtrack=False`` for a server meant to run without nbtrack's lab extension."""
    env = _isolated_env(home)
    if check_nbtrack:
        _check_extensions_found(env)
    port = _free_port()
    token = secrets.token_hex(16)
    log_path = artifacts_dir() / "jupyterlab.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--allow-root",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                f"--ServerApp.root_dir={root}",
                f"--IdentityProvider.token={token}",
                # window.jupyterapp, so tests can run commands.
                "--LabApp.expose_app_in_browser=True",
                "--LabApp.news_url=",
            ],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Lab(base_url=f"http://127.0.0.1:{port}/", token=token, root_dir=root, env=env)
    try:
        _wait_until_up(server, process, log_path)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_up(server: Lab, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            msg = f"JupyterLab exited with {process.returncode}:\n{log_path.read_text()[-4000:]}"
            raise RuntimeError(msg)
        with contextlib.suppress(OSError):
            status, _ = server.request("GET", "api/status")
            if status == 200:
                return
        if time.monotonic() > deadline:
            msg = f"JupyterLab did not answer within {START_TIMEOUT_S} s; see {log_path}"
            raise RuntimeError(msg)
        time.sleep(0.25)
