"""The jupyter-server-proxy entry point: an MLflow UI at ``<base_url>mlflow/`` inside the
Jupyter server, behind its login, and how a kernel knows that this route exists for its store.

That route is the one to offer first: a UI on 127.0.0.1 has no login, and every local user can
reach it; through the Jupyter server, only who may use the notebook can.
"""

from __future__ import annotations

import importlib.util
import os
from importlib.metadata import entry_points
from typing import Any

from nbtrack import _platform
from nbtrack.tracking import resolve_uri
from nbtrack.ui.process import DEFAULT_START_TIMEOUT_S, child_env, server_command

__all__ = ["jupyter_server_proxy_config", "kernel_proxy_url"]


def jupyter_server_proxy_config() -> dict[str, Any]:
    """Configuration for jupyter-server-proxy: an MLflow UI at ``<base_url>mlflow/``.

    The proxy strips ``<base_url>mlflow`` before forwarding (``absolute_url`` False), and MLflow's
    UI loads its assets and calls its API with relative URLs, so it needs no ``--static-prefix``.
    The Host header is rewritten to the UI's own address because MLflow rejects Host names
    other than localhost and private addresses (DNS-rebinding protection); the proxy itself is
    behind Jupyter's authentication. The Origin header is left alone: MLflow refuses state-changing
    API calls (the UI's run searches are POSTs) from origins other than localhost, so a browser
    reaching Jupyter under another name needs that origin in ``MLFLOW_SERVER_CORS_ALLOWED_ORIGINS``
    in the Jupyter server's environment; rewriting it here would switch off MLflow's CSRF guard,
    which the proxy (it skips Jupyter's XSRF check) leaves as the only one. The store is the
    Jupyter server's ``$MLFLOW_TRACKING_URI``, else ``mlflow.db`` in the folder the server was
    started from.
    """
    return {
        "command": _proxy_command,
        "environment": _proxy_environment,
        "timeout": DEFAULT_START_TIMEOUT_S,
        "absolute_url": False,
        "request_headers_override": {"Host": "127.0.0.1:{port}"},
        "new_browser_tab": True,
        "launcher_entry": {"title": "MLflow", "enabled": True},
    }


def _proxy_command(port: int) -> list[str]:
    return server_command(port)


def _proxy_environment() -> dict[str, str]:
    # jupyter-server-proxy layers this over the server's own environment.
    return {k: v for k, v in child_env(resolve_uri()).items() if os.environ.get(k) != v}


def kernel_proxy_url(uri: str) -> str | None:
    """``<base_url>mlflow/`` (a path on the Jupyter server's own address) when this kernel runs
    under a Jupyter server that serves the MLflow UI of ``uri`` through jupyter-server-proxy;
    None otherwise.

    Decided only from what the kernel can know for sure: the process that started it
    (``JPY_PARENT_PID``, set by jupyter_client) is a running Jupyter server (its runtime file
    gives the base URL); jupyter-server-proxy and nbtrack's ``mlflow`` entry are installed in
    this environment; and the store the proxy serves, the server's ``$MLFLOW_TRACKING_URI``,
    else ``mlflow.db`` in the server's working folder (read from ``/proc``), is ``uri``.
    """
    parent = os.environ.get("JPY_PARENT_PID", "")
    if not parent.isdigit() or not _proxy_installed():
        return None
    server = _server_info(int(parent))
    seen = _platform.process_cwd_and_environ(int(parent))
    if server is None or seen is None:
        return None
    folder, environment = seen
    configured = environment.get("MLFLOW_TRACKING_URI", "").strip()
    served = resolve_uri(configured or "sqlite:///mlflow.db", folder)
    if served != resolve_uri(uri):
        return None
    base = str(server.get("base_url") or "/")
    return base.rstrip("/") + "/mlflow/"


def _proxy_installed() -> bool:
    if importlib.util.find_spec("jupyter_server_proxy") is None:
        return False
    return any(ep.name == "mlflow" for ep in entry_points(group="jupyter_serverproxy_servers"))


def _server_info(pid: int) -> dict[str, Any] | None:
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        return None
    for info in list_running_servers():
        if info.get("pid") == pid:
            return dict(info)
    return None
