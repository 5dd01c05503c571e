"""REST handlers of nbtrack's server extension (docs/server-api.md).

Every handler sits behind Jupyter's authentication, authorization and XSRF rules (APIHandler),
answers errors as JSON ``{"reason": ...}`` and runs blocking work (MLflow, starting a UI) in a
thread so that the server's event loop keeps serving other requests.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from http.client import responses
from pathlib import Path
from typing import Any, TypeVar

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from nbtrack import tracking
from nbtrack._redact import redact_text, strip_uri_credentials
from nbtrack.errors import UiStartError
from nbtrack.server.config import NbtrackServer
from nbtrack.server.pool import StoreBusy, StorePool
from nbtrack.server.runs import (
    StoreError,
    check_reachable,
    list_runs,
    notebook_store,
    public_store,
    store_is_empty,
)
from nbtrack.ui import process as ui_process

T = TypeVar("T")

AUTH_RESOURCE = "nbtrack"


@dataclass(frozen=True)
class ExtensionState:
    """What the handlers share: settings, the threads for blocking calls, and where
    jupyter-server-proxy serves an MLflow UI (``None`` when it does not)."""

    config: NbtrackServer
    pool: StorePool
    root_dir: Path  # resolved (links followed), to tell inside from outside
    root_as_named: Path  # as the server names it, which is what kernels see as their folder
    base_url: str
    proxy_store: str | None


class _NbtrackHandler(APIHandler):
    auth_resource = AUTH_RESOURCE

    def initialize(self, state: ExtensionState) -> None:
        self.state = state

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # APIHandler's errors carry "message" and an HTTP reason phrase; docs/server-api.md
        # promises one human-readable "reason" field, also for unexpected failures.
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message:
            # Without args tornado gives the message with each % doubled: % () undoes that.
            reason = exc.log_message % exc.args
        elif isinstance(exc, web.HTTPError):
            reason = responses.get(status_code, "error")
        else:
            reason = (
                f"internal error in nbtrack's server extension ({type(exc).__name__}); "
                "the Jupyter server's log has the traceback"
            )
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"reason": reason}))

    def notebook(self) -> tuple[str, Path, Path]:
        """The ``path`` argument as (path relative to the root, absolute path, the folder whose
        store it uses); 4xx if bad. ``path`` names a notebook, or a folder (``.``, ``sub/..``):
        then that folder itself, never the one above it."""
        path = self.get_query_argument("path", None)
        if not path:
            raise web.HTTPError(
                400, "missing query argument: ?path=<notebook path relative to the server root>"
            )
        if "\0" in path or Path(path).is_absolute():
            raise web.HTTPError(
                400, f"path {path!r} must be relative to the server root, like the contents API"
            )
        root = self.state.root_dir
        try:
            target = (root / path).resolve()
            if not target.is_relative_to(root):
                raise web.HTTPError(403, f"path {path!r} is outside the server root")
            folder = target if target.is_dir() else target.parent
            found = folder.is_dir()
        except (OSError, RuntimeError) as exc:  # a name too long, a loop of links
            raise web.HTTPError(404, f"path {path[:200]!r} cannot be followed") from exc
        if not found:
            raise web.HTTPError(404, f"no folder {folder.relative_to(root).as_posix()!r}")
        return target.relative_to(root).as_posix(), target, folder

    def store_of(self, folder: Path) -> str:
        return notebook_store(folder, self.state.config.tracking_uri)

    async def blocking(self, func: Callable[..., T], *args: Any, store: str, timeout: float) -> T:
        """``func(*args)`` in one of the threads ``store`` may hold; store failures and
        timeouts become 503s."""
        try:
            return await self.state.pool.run(store, functools.partial(func, *args), timeout)
        except StoreBusy as exc:
            msg = (
                f"no answer within {timeout:.0f} s (NbtrackServer.store_timeout): earlier "
                "requests to this tracking store are still waiting for it"
            )
            raise web.HTTPError(503, msg) from exc
        except asyncio.TimeoutError as exc:
            msg = f"no answer within {timeout:.0f} s (NbtrackServer.store_timeout)"
            raise web.HTTPError(503, msg) from exc
        except StoreError as exc:
            # The page gets a reason anyone may read; the server's log gets the details.
            cause = exc.__cause__
            self.log.warning("nbtrack: %s: %s", exc, redact_text(repr(cause)) if cause else "")
            raise web.HTTPError(503, str(exc)) from exc

    def checked(self, func: Callable[..., T], uri: str, *args: Any) -> T:
        """``func(uri, *args)``, its StoreError naming the store as the page may show it."""
        try:
            return func(uri, *args)
        except StoreError as exc:
            name = public_store(uri, self.state.root_dir)
            raise StoreError(f"tracking store {name}: {exc}") from exc.__cause__

    def proxy_url(self, uri: str) -> str | None:
        """``<base_url>mlflow/`` when jupyter-server-proxy serves a UI of this very store."""
        proxy_store = self.state.proxy_store
        if proxy_store is None or tracking.resolve_uri(uri) != proxy_store:
            return None
        return str(url_path_join(self.state.base_url, "mlflow/"))


class RunsHandler(_NbtrackHandler):
    """``GET /nbtrack/api/runs?path=...``: the notebook's runs as records, newest first."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        rel, target, folder = self.notebook()
        uri = self.store_of(folder)
        config = self.state.config
        timeout = config.store_timeout
        if store_is_empty(uri):
            # Nothing logged yet; reading (or starting a UI) would create an empty database.
            ui = None
            runs: list[dict[str, Any]] = []
        else:
            await self.blocking(self.checked, check_reachable, uri, store=uri, timeout=timeout)
            if config.ui_autostart:
                ui = await _ensure_ui(self, uri)
            else:
                ui = await self.blocking(ui_process.find_ui, uri, store=uri, timeout=timeout)
            runs = await self.blocking(
                self.checked,
                functools.partial(
                    list_runs,
                    notebook_path=rel,
                    max_runs=config.max_runs,
                    ui=ui,
                ),
                uri,
                _source_names(self.state.root_as_named, rel, target),
                store=uri,
                timeout=timeout,
            )
        self.finish(
            {
                "tracking_uri": strip_uri_credentials(uri),
                "ui_url": ui.url if ui else None,
                "runs": runs,
            }
        )


class UiHandler(_NbtrackHandler):
    """``GET /nbtrack/api/ui?path=...`` finds the notebook store's MLflow UI; ``POST`` starts
    one if none runs."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        _, _, folder = self.notebook()
        uri = self.store_of(folder)
        timeout = self.state.config.store_timeout
        ui = await self.blocking(ui_process.find_ui, uri, store=uri, timeout=timeout)
        self.finish({"url": ui.url if ui else None, "proxy_url": self.proxy_url(uri)})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        _, _, folder = self.notebook()
        uri = self.store_of(folder)
        if store_is_empty(uri):
            # An MLflow UI on a store that does not exist yet would create it, in whatever
            # folder the page named: nothing is created from the page.
            where = folder.relative_to(self.state.root_dir).as_posix()
            msg = (
                f"nothing was logged in {where!r} yet (it has no mlflow.db): run a tracked "
                "cell there first"
            )
            raise web.HTTPError(404, msg)
        timeout = self.state.config.store_timeout
        await self.blocking(self.checked, check_reachable, uri, store=uri, timeout=timeout)
        ui = await _ensure_ui(self, uri)
        self.finish({"url": ui.url, "proxy_url": self.proxy_url(uri)})


async def _ensure_ui(handler: _NbtrackHandler, uri: str) -> ui_process.UiServer:
    timeout = handler.state.config.ui_start_timeout
    try:
        return await handler.blocking(
            functools.partial(ui_process.ensure_ui, timeout=timeout),
            uri,
            store=uri,
            timeout=timeout + 15.0,  # ensure_ui's own limit fires first, with the log tail
        )
    except UiStartError as exc:
        # The UI's log tail and paths are for the server's log, not the page.
        handler.log.warning("nbtrack: %s", redact_text(str(exc)))
        msg = "could not start an MLflow UI; the Jupyter server's log has its output"
        raise web.HTTPError(503, msg) from exc


def _source_names(root: Path, rel: str, target: Path) -> list[str]:
    """Spellings of the notebook's path a kernel may have logged as ``mlflow.source.name``:
    absolute (as the server names its root, and with links resolved) and relative."""
    return [str(target), str(root / rel), rel]


def handlers(state: ExtensionState) -> list[tuple[str, type[_NbtrackHandler], dict[str, Any]]]:
    """Routes to add to the Jupyter server's web application."""
    kwargs = {"state": state}
    return [
        (url_path_join(state.base_url, "nbtrack/api/runs"), RunsHandler, kwargs),
        (url_path_join(state.base_url, "nbtrack/api/ui"), UiHandler, kwargs),
    ]
