"""The jupyter-server-proxy entry point: an MLflow UI at ``<base_url>mlflow/`` inside the
Jupyter server, for setups where the browser cannot reach the kernel's machine directly."""

from __future__ import annotations

import os
from typing import Any

from nbtrack.tracking import resolve_uri
from nbtrack.ui.process import DEFAULT_START_TIMEOUT_S, child_env, server_command

__all__ = ["jupyter_server_proxy_config"]


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
    return server_command(resolve_uri(), port)


def _proxy_environment() -> dict[str, str]:
    # jupyter-server-proxy layers this over the server's own environment.
    return {key: value for key, value in child_env().items() if key not in os.environ}
