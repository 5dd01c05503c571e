"""Links to MLflow UIs, as HTML for the notebook and as URLs for records and the live view."""

from __future__ import annotations

import html
from urllib.parse import quote, urlsplit

from nbtrack._redact import strip_uri_credentials
from nbtrack.ui.process import UiServer, find_ui
from nbtrack.ui.registry import TRAINING_VIEW

__all__ = ["proxy_link_html", "run_url", "ui_link_html"]


def run_url(uri: str, experiment_id: str | None, run_id: str | None) -> str | None:
    """Link to a run in the MLflow UI: the server's own for an MLflow server, else one that
    ``%track_ui``/``nbtrack ui`` started for this store (None if none runs)."""
    if not (experiment_id and run_id):
        return None
    if not uri.startswith(("http://", "https://")):
        ui = find_ui(uri)
        return None if ui is None else ui.run_url(experiment_id, run_id)
    base = strip_uri_credentials(uri).split("?", 1)[0].rstrip("/")
    return f"{base}/#/experiments/{quote(experiment_id)}/runs/{quote(run_id)}?{TRAINING_VIEW}"


def ui_link_html(ui: UiServer, proxy_url: str | None = None) -> str:
    """A small HTML snippet linking to ``ui``; every value in it is escaped.

    ``proxy_url`` is the same store's UI as served through the Jupyter server
    (jupyter-server-proxy, ``<base_url>mlflow/``), shown as a second link for browsers that
    cannot reach 127.0.0.1 of the kernel's machine. It is used only when it is an http(s) URL or
    an absolute path.
    """
    local = html.escape(ui.url, quote=True)
    parts = [f'MLflow UI: <a href="{local}" target="_blank" rel="noopener noreferrer">{local}</a>']
    if proxy_url and _is_link_safe(proxy_url):
        proxied = html.escape(proxy_url, quote=True)
        parts.append(
            f'(through Jupyter: <a href="{proxied}" target="_blank" '
            f'rel="noopener noreferrer">{proxied}</a>)'
        )
    return f'<div class="nbtrack-ui-link">{" ".join(parts)}</div>'


def proxy_link_html(proxy_url: str) -> str:
    """The link to the MLflow UI served through the Jupyter server (behind its login)."""
    if not _is_link_safe(proxy_url):
        return '<div class="nbtrack-ui-link">MLflow UI: no safe link</div>'
    proxied = html.escape(proxy_url, quote=True)
    return (
        f'<div class="nbtrack-ui-link">MLflow UI (through Jupyter, behind its login): '
        f'<a href="{proxied}" target="_blank" rel="noopener noreferrer">{proxied}</a></div>'
    )


def _is_link_safe(url: str) -> bool:
    if url.startswith("/") and not url.startswith("//"):
        return True
    return urlsplit(url).scheme in ("http", "https")
