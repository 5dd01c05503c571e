"""``text/html``: a record as a self-contained summary card with the chart.

Written for the strictest viewer: JupyterLab sanitizes untrusted HTML output, removing <style>,
<script>, <svg> and any CSS property outside its allow-list. So every style is inline and uses
plain properties, and the chart is an <img> whose source is a data: URI (the sanitizer keeps
those): the chart's PNG, which GitHub's viewer shows too, or the SVG while a live view redraws
(no PNG is made then). nbconvert, GitHub and VS Code show the same markup.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from nbtrack.record.format import (
    MAX_TABLE_ROWS,
    MISSING,
    escape,
    fmt_step,
    fmt_time,
    fmt_value,
    headline,
    stop_line,
    sync_line,
)
from nbtrack.record.metrics import ALARM_COLOR, series_color
from nbtrack.record.svg import CHART_WIDTH
from nbtrack.record.sweep import trials_html

__all__ = ["render_html"]

_STATUS_COLORS = {
    "FINISHED": ("#1a7f37", "#dafbe1"),
    "FAILED": ("#cf222e", "#ffebe9"),
    "KILLED": ("#9a6700", "#fff8c5"),
    "RUNNING": ("#0969da", "#ddf4ff"),
}
_CARD = (
    "font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:13px;"
    "line-height:1.45;color:#1f2328;background:#ffffff;border:1px solid #d0d7de;"
    "border-radius:6px;padding:10px 12px;margin:2px 0;max-width:664px;text-align:left"
)
_MUTED = "color:#59636e"
# Viewers style bare tables (JupyterLab and nbconvert right-align cells, pad them, stripe rows
# with theme colours), and only inline styles win over that, so every cell carries its own.
_TABLE = "border-collapse:collapse;border:none;margin:6px 0 2px 0;font-size:12px;color:#1f2328"
_TH = "border-bottom:1px solid #d0d7de;color:#59636e;font-weight:600;background:#ffffff"
_ROW = "border-bottom:1px solid #eaeef2;background:#ffffff"
_LEFT = "text-align:left;padding:2px 12px 2px 0;vertical-align:top"
_RIGHT = "text-align:right;padding:2px 0 2px 12px;white-space:nowrap"


def _svg_data_uri(svg: str) -> str:
    # Percent-encoding only what a URI or the attribute needs keeps the data ~5% larger than
    # the SVG itself (base64 would add a third).
    return "data:image/svg+xml," + quote(svg, safe="/:=,.;()-_!*'@$+?~&")


def render_html(record: Mapping[str, Any], svg: str | None = None, png: bytes | None = None) -> str:
    """A self-contained HTML summary of a (valid) record: status, run, chart, metrics, params.

    ``svg`` is the chart from ``render_chart(record)`` and ``png`` the same chart rasterised
    (``render_png``); the PNG is embedded as the chart when given, else the SVG; None for both
    leaves the chart out.
    """
    run = record["run"]
    fg, bg = _STATUS_COLORS.get(run["status"], ("#59636e", "#eaeef2"))
    badge = (
        f'<span style="display:inline-block;padding:0 7px;border-radius:10px;font-size:11px;'
        f'font-weight:600;color:{fg};background:{bg}">{escape(run["status"])}</span>'
    )
    facts = [escape(headline(record).split(" ", 1)[1])]
    if run.get("experiment_name"):
        facts.append(f"experiment {escape(run['experiment_name'])}")
    facts.append(f"started {escape(fmt_time(run['start_time']))}")
    link = ""
    if record.get("ui_url"):
        label = f"MLflow run {run['id'][:8]}" if run.get("id") else "MLflow"
        link = (
            f' · <a href="{escape(record["ui_url"])}" target="_blank" style="color:#0969da">'
            f"{escape(label)}</a>"
        )
    parts = [
        f'<div style="{_CARD}">',
        f"<div>{badge} <strong>{escape(run['name'])}</strong> "
        f'<span style="{_MUTED}">· {" · ".join(facts)}</span>{link}</div>',
    ]
    stop = stop_line(record)
    if stop:
        parts.append(
            f'<div style="margin:6px 0;padding:4px 8px;border-radius:4px;color:{fg};'
            f'background:{bg}">{escape(stop)}</div>'
        )
    sync = sync_line(record)
    if sync:
        parts.append(f'<div style="{_MUTED};margin:4px 0">{escape(sync)}</div>')
    if svg is not None:
        width, height = _svg_size(svg)
        if png is not None:
            source = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        else:
            source = _svg_data_uri(svg)
        parts.append(
            # Inside a double-quoted attribute only & needs escaping (the URI has no " < >);
            # escaping the SVG's many ' as well would add a quarter to the size.
            f'<img src="{html.escape(source, quote=False)}" '
            f'width="{width}" height="{height}" '
            f'alt="{escape("metrics of run " + str(run["name"]))}" '
            'style="display:block;max-width:100%;height:auto;margin:8px 0 2px 0">'
        )
    parts.append(trials_html(record))
    parts.append(_metrics_table(record))
    parts.append(_params_table(record))
    parts.append(_footer(record))
    parts.append("</div>")
    return "\n".join(p for p in parts if p)


def _svg_size(svg: str) -> tuple[int, int]:
    match = re.search(r"width='(\d+)' height='(\d+)'", svg)
    return (int(match[1]), int(match[2])) if match else (CHART_WIDTH, 200)


def _table(head: Sequence[str], rows: Sequence[str], numeric_from: int) -> str:
    cells = "".join(
        f'<th style="{_TH};{_RIGHT if i >= numeric_from else _LEFT}">{h}</th>'
        for i, h in enumerate(head)
    )
    return (
        f'<table style="{_TABLE}"><thead><tr>{cells}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _metrics_table(record: Mapping[str, Any]) -> str:
    metrics = record["metrics"]
    if not metrics:
        return f'<div style="{_MUTED};margin-top:6px">no metrics logged</div>'
    rows = []
    for i, (name, m) in enumerate(list(metrics.items())[:MAX_TABLE_ROWS]):
        swatch = (
            f'<span style="display:inline-block;width:10px;height:3px;margin:0 6px 3px 0;'
            f'vertical-align:middle;background:{series_color(i)}"></span>'
        )
        best = MISSING
        if m["best"] is not None:
            arrow = "↓" if m["goal"] == "min" else "↑"
            best = f"{escape(fmt_value(m['best']))} {arrow} @{escape(fmt_step(m['best_step']))}"
        points = f"{m['count']:,}" if m["count"] is not None else MISSING  # the server API's
        if m["nonfinite"]:
            points += f' <span style="color:{ALARM_COLOR}">({m["nonfinite"]:,} NaN/inf)</span>'
        numbers = (
            f"{escape(fmt_value(m['last']))} @{escape(fmt_step(m['last_step']))}",
            best,
            escape(fmt_value(m["min"])),
            escape(fmt_value(m["max"])),
            points,
        )
        rows.append(
            f'<tr style="{_ROW}"><td style="{_LEFT}">{swatch}{escape(name)}</td>'
            + "".join(f'<td style="{_RIGHT}">{n}</td>' for n in numbers)
            + "</tr>"
        )
    more = len(metrics) - len(rows)
    if more:
        rows.append(
            f'<tr style="{_ROW};{_MUTED}"><td style="{_LEFT}" colspan="6">'
            f"… and {more} more</td></tr>"
        )
    return _table(("metric", "last", "best", "min", "max", "points"), rows, numeric_from=1)


def _params_table(record: Mapping[str, Any]) -> str:
    params = record["params"]
    if not params:
        return ""
    items = list(params.items())[:MAX_TABLE_ROWS]
    rows = [
        f'<tr style="{_ROW};font-family:monospace"><td style="{_LEFT}">{escape(k)}</td>'
        f'<td style="{_LEFT};word-break:break-all">{escape(v)}</td></tr>'
        for k, v in items
    ]
    more = len(params) - len(items) + record.get("params_omitted", 0)
    if more:
        rows.append(
            f'<tr style="{_ROW};{_MUTED}"><td style="{_LEFT}" colspan="2">'
            f"… and {more} more in MLflow</td></tr>"
        )
    return _table(("param", "value"), rows, numeric_from=2)


def _footer(record: Mapping[str, Any]) -> str:
    run = record["run"]
    bits = []
    if run.get("id"):
        bits.append(f"run id {run['id']}")
    if record.get("tracking_uri"):
        bits.append(f"tracking {record['tracking_uri']}")
    if record["nbtrack_version"] != "unknown":
        bits.append(f"nbtrack {record['nbtrack_version']}")
    if not bits:
        return ""
    return f'<div style="{_MUTED};font-size:11px;margin-top:6px">{escape(" · ".join(bits))}</div>'
