"""Links to MLflow UIs, as HTML for the notebook and as URLs for records and the live view.

Every address shown passes ``safe_link`` (http(s), no credentials), or is a plain path on the
Jupyter server's own address: a ``javascript:`` link would run in the notebook's page.
"""

from __future__ import annotations

import html
import re

from nbtrack._redact import safe_link
from nbtrack.ui.process import UiServer, find_ui

__all__ = ["proxy_link_html", "run_url", "ui_link_html"]


def run_url(uri: str, experiment_id: str | None, run_id: str | None) -> str | None:
    """Link to a run in the MLflow UI: the server's own for an MLflow server, else one that
    ``%track_ui``/``nbtrack ui`` started for this store (None if none runs, or no safe link)."""
    if not (experiment_id and run_id):
        return None
    ui = find_ui(uri)
    return None if ui is None else safe_link(ui.run_url(experiment_id, run_id))


def ui_link_html(ui: UiServer, proxy_url: str | None = None) -> str:
    """A small HTML snippet linking to ``ui``; every value in it is escaped.

    ``proxy_url`` is the same store's UI as served through the Jupyter server
    (jupyter-server-proxy, ``<base_url>mlflow/``), shown as a second link for browsers that
    cannot reach 127.0.0.1 of the kernel's machine. It is used only when it is an http(s) URL or
    a plain absolute path.
    """
    local = safe_link(ui.url)
    parts = [f"MLflow UI: {_anchor(local)}" if local else "MLflow UI: no safe link"]
    proxied = _jupyter_link(proxy_url) if proxy_url else None
    if proxied:
        parts.append(f"(through Jupyter: {_anchor(proxied)})")
    return f'<div class="nbtrack-ui-link">{" ".join(parts)}</div>'


def proxy_link_html(proxy_url: str) -> str:
    """The link to the MLflow UI served through the Jupyter server (behind its login)."""
    proxied = _jupyter_link(proxy_url)
    if not proxied:
        return '<div class="nbtrack-ui-link">MLflow UI: no safe link</div>'
    return (
        f'<div class="nbtrack-ui-link">MLflow UI (through Jupyter, behind its login): '
        f"{_anchor(proxied)}</div>"
    )


# A path on the page's own address. Browsers read a backslash as "/" and drop tabs and
# newlines, so "/\host" or "/<tab>/host" would be "//host": another site.
_PLAIN_PATH = re.compile(r"/(?![/\\])[^\\\s\x00-\x1f\x7f]*")


def _jupyter_link(url: str) -> str | None:
    """``url`` as a link to the UI through Jupyter: a plain absolute path (``<base_url>mlflow/``
    on the Jupyter server's own address), else what ``safe_link`` allows."""
    return url if _PLAIN_PATH.fullmatch(url) else safe_link(url)


def _anchor(url: str) -> str:
    shown = html.escape(url, quote=True)
    return f'<a href="{shown}" target="_blank" rel="noopener noreferrer">{shown}</a>'
