"""nbtrack's Jupyter server extension: the runs of a notebook and its MLflow UI over REST.

Enabled on install by ``jupyter-config/nbtrack.json`` (``jpserver_extensions``: ``nbtrack``,
whose ``_jupyter_server_extension_points`` names this module); settings are
``c.NbtrackServer.*`` (see :class:`NbtrackServer`).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from nbtrack.server.config import NbtrackServer
from nbtrack.server.pool import StorePool

__all__ = ["NbtrackServer"]

_STATE_KEY = "nbtrack_state"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nbtrack.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from nbtrack.server.handlers import ExtensionState, handlers

    web_app = serverapp.web_app
    root = Path(serverapp.root_dir).expanduser().absolute()
    state = ExtensionState(
        config=NbtrackServer(parent=serverapp),
        # A few threads: MLflow calls block, and one slow store must not hold up other pages,
        # also once its calls time out and go on in their threads.
        pool=StorePool(threads=4, per_store=2),
        root_dir=root.resolve(),
        root_as_named=root,
        base_url=web_app.settings["base_url"],
        proxy_store=_proxy_store(serverapp),
    )
    web_app.settings[_STATE_KEY] = state
    web_app.add_handlers(".*$", handlers(state))
    serverapp.log.info("nbtrack: runs API at %snbtrack/api/", state.base_url)


def _unload_jupyter_server_extension(serverapp: Any) -> None:
    state = serverapp.web_app.settings.pop(_STATE_KEY, None)
    if state is not None:
        state.pool.shutdown()


def _proxy_store(serverapp: Any) -> str | None:
    """The store of the MLflow UI that jupyter-server-proxy serves at ``<base_url>mlflow/``, or
    None when no such proxy is configured (then the API offers no proxy links)."""
    if not serverapp.jpserver_extensions.get("jupyter_server_proxy"):
        return None
    configured = serverapp.config.get("ServerProxy", {}).get("servers", {})
    registered = {ep.name for ep in entry_points(group="jupyter_serverproxy_servers")}
    if "mlflow" not in configured and "mlflow" not in registered:
        return None
    from nbtrack.tracking import resolve_uri

    # What the proxy's command (nbtrack.ui.proxy) will serve, computed in this same process
    # and environment.
    return resolve_uri()
