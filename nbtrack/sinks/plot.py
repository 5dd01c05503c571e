"""The live plot under a running tracked cell: one line per metric and a status line.

``DisplaySink`` shows ``LivePlot.widget`` when the cell starts, calls ``update`` from the sender
thread after every batch (about ten times a second) and ``close`` when the cell ends, before the
run's record takes the widget's place.

What keeps it cheap, however long the run:

- ``update`` only compares a number with the last one drawn and the clock with the next redraw
  time; a redraw happens at most once per ``NBTRACK_PLOT_INTERVAL`` seconds (default 0.5), and
  only when a curve changed. Data that arrives inside the interval is drawn at its end by a
  one-shot timer, so the plot never stops short of the last step while the cell keeps running.
- A redraw resends only the curves that changed, each thinned by min/max ``decimate`` to a fixed
  budget, as numpy arrays in one ``batch_update`` message: its size does not grow with the run.
- Building the first ``FigureWidget`` of a kernel costs seconds (importing plotly pulls in
  nbformat and jsonschema). That import starts in a background thread when the cell starts, and
  the chart is only built at the first redraw that finds it done: the cell starts at once, the
  status line shows progress meanwhile, and a cell that logs nothing never pays for plotly.

Non-finite values are never dropped silently: the line breaks there, a red-edged triangle marks
each one on the panel's edge (top for NaN and +inf, bottom for -inf) and the status line names
the metric and the step where it first happened.
"""

from __future__ import annotations

import html
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import ipywidgets
import numpy as np

from nbtrack._decimate import decimate
from nbtrack.errors import NbtrackWarning
from nbtrack.record import group_metrics, series_color
from nbtrack.secrets import safe_link

if TYPE_CHECKING:
    from nbtrack._curves import Curve
    from nbtrack.run import Run

__all__ = ["LivePlot"]

_DEFAULT_INTERVAL_S = 0.5
_IMPORT_POLL_S = 0.2
# Points sent per redraw, over all curves and per curve: 8 metrics get full detail (a chart is
# ~1000 px wide, min/max pairs keep every spike), 50 metrics still fit in ~128 KB per redraw.
_POINTS_TOTAL = 8000
_POINTS_PER_CURVE_MAX = 1000
_POINTS_PER_CURVE_MIN = 100
# As in the record's chart: beyond this the metrics are in the status line and in MLflow.
_MAX_PANELS = 8
_STATUS_VALUES = 8
_STATUS_DIVERGED = 3
_SPARSE_POINTS = 60

# Pixel geometry of one panel: legend band above, plot area, tick labels below.
_LEGEND_PX = 26
_PLOT_PX = 190
_TICKS_PX = 30
_MARGIN = {"l": 56, "r": 16, "t": 6, "b": 0}
_COLUMN_GAP = 0.07  # fraction of the width between the two columns of panels
_ALARM = "#cf222e"


class LivePlot:
    """A live chart of a run's metrics and a status line, in one ipywidgets ``VBox``.

    Construct it in the main thread when the cell starts and display ``widget``; call
    ``update(run)`` whenever the run's curves may have changed (from any thread, as long as the
    curves do not change during the call: the sender calls it while holding ``run.drain_lock``);
    call ``close()`` at the end to remove every widget model it created.
    """

    def __init__(self, run: Run) -> None:
        self.interval = _interval_from_env()
        self._status = ipywidgets.HTML(value=_status_html(run, _now_ms(), {}, 0, None))
        self.widget = ipywidgets.VBox([self._status])
        self._chart: _Chart | None = None
        self._chart_problem: str | None = None
        # Everything below is guarded by _lock: the sender thread, the timer thread and the
        # main thread's close() all come through it, so a redraw never races close().
        self._lock = threading.Lock()
        self._closed = False
        self._timer: threading.Timer | None = None
        self._drawn: tuple[int, int, str] | None = None
        self._next_draw = 0.0
        self._first_bad: dict[str, tuple[float, float]] = {}
        self._timer_failed = False
        _start_plotly_import()

    def update(self, run: Run) -> None:
        """Redraw if a curve changed and the last redraw is at least ``interval`` seconds old.

        Cheap when nothing is due. Changes that arrive too soon are drawn by a timer at the end
        of the interval. Nothing happens once the run ended (its record replaces the plot) or
        after ``close``.
        """
        with self._lock:
            self._tick(run)

    def close(self) -> None:
        """Stop redrawing and close every widget, so no widget state is saved with the notebook.

        Safe to call from any thread, more than once, and while a redraw is due.
        """
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            parts = [self._status, self.widget]
            if self._chart is not None:
                parts.insert(0, self._chart.figure)
            for part in parts:
                _close_widget(part)

    # ------------------------------------------------------------------ internals, under _lock

    def _tick(self, run: Run) -> None:
        if self._closed or run.ended:
            return
        state = _change_key(run)
        if state == self._drawn:
            return
        now = time.monotonic()
        if now < self._next_draw:
            self._schedule(run, self._next_draw - now)
            return
        self._next_draw = now + self.interval
        self._draw(run, state)

    def _schedule(self, run: Run, delay: float) -> None:
        if self._timer is not None:
            return
        timer = threading.Timer(delay, self._on_timer, (run,))
        timer.name = "nbtrack-live-plot"
        timer.daemon = True
        self._timer = timer
        timer.start()

    def _on_timer(self, run: Run) -> None:
        # The sender changes curves only while holding drain_lock; taking it here (before our own
        # lock, the order the sender uses too) lets the timer read them consistently.
        try:
            with run.drain_lock, self._lock:
                self._timer = None
                self._tick(run)
        except Exception as error:  # noqa: BLE001 - our own thread: report it, never crash it
            if not self._timer_failed:
                self._timer_failed = True
                warnings.warn(
                    f"nbtrack: the live plot failed to redraw and skips this update: {error!r}",
                    NbtrackWarning,
                    stacklevel=1,
                )

    def _draw(self, run: Run, state: tuple[int, int, str]) -> None:
        curves = run.curves
        self._find_divergences(curves)
        chart_ready = True
        if curves and self._chart is None and self._chart_problem is None:
            chart_ready = self._build_chart()
        hidden = 0
        if self._chart is not None:
            hidden = self._chart.draw(curves)
        self._status.value = _status_html(
            run, _now_ms(), self._first_bad, hidden, self._chart_problem
        )
        if chart_ready:
            self._drawn = state
        else:
            # plotly is still importing in the background: look again a little later.
            self._schedule(run, max(self.interval, _IMPORT_POLL_S))

    def _build_chart(self) -> bool:
        if not _plotly_imported.is_set():
            return False
        if _plotly_error is not None:
            self._chart_problem = (
                f"live chart unavailable: importing plotly failed ({_plotly_error!r}); "
                "install plotly and anywidget in the kernel's environment"
            )
            return True
        self._chart = _Chart()
        self.widget.children = (self._status, self._chart.figure)
        return True

    def _find_divergences(self, curves: Mapping[str, Curve]) -> None:
        for name, curve in curves.items():
            if curve.nonfinite and name not in self._first_bad:
                # Decimation keeps the first non-finite point of every bucket, so the first
                # one still kept is the first one ever logged.
                steps, values = curve.points()
                bad = np.flatnonzero(~np.isfinite(values))
                if len(bad):
                    i = int(bad[0])
                    self._first_bad[name] = (float(steps[i]), float(values[i]))


class _Chart:
    """The plotly FigureWidget: panels of grouped metrics, a line and a marks trace per metric."""

    def __init__(self) -> None:
        import plotly.graph_objects as go  # seconds to import: see _import_plotly

        self.figure = go.FigureWidget(layout=_base_layout())
        self._traces: dict[str, tuple[int, int]] = {}  # metric -> (line, marks) trace indexes
        self._names: tuple[str, ...] = ()
        self._shown: list[str] = []
        self._panels: list[list[str]] = []
        self._drawn_versions: dict[str, int] = {}
        self._axis_types: dict[int, str] = {}
        self._axes_laid_out = 0

    def draw(self, curves: Mapping[str, Curve]) -> int:
        """Bring the figure up to date with ``curves``; return how many metrics have no panel.

        Sends at most two messages: ``addTraces`` when metrics appeared, then one ``update``
        with the layout, the placements and the changed curves.
        """
        names = tuple(curves)
        panels = None
        if names != self._names:
            ranges = {n: (c.min, c.max) for n, c in curves.items() if c.min <= c.max}
            panels = group_metrics(curves, ranges)[:_MAX_PANELS]
            self._add_traces(curves, panels)
            self._names = names
        figure = self.figure
        with figure.batch_update():
            if panels is not None:
                self._place(panels)
            budget = _points_per_curve(len(self._shown))
            for name in self._shown:
                curve = curves[name]
                if self._drawn_versions.get(name) == curve.version:
                    continue
                line, marks = self._traces[name]
                _fill(figure.data[line], figure.data[marks], curve, budget)
                self._drawn_versions[name] = curve.version
            self._update_scales(curves)
        return len(curves) - len(self._shown)

    def _add_traces(self, curves: Mapping[str, Curve], panels: list[list[str]]) -> None:
        colors = {name: series_color(i) for i, name in enumerate(curves)}
        new = [(k, name) for k, panel in enumerate(panels) for name in panel]
        new = [(k, name) for k, name in new if name not in self._traces]
        if not new:
            return
        specs = []
        for k, name in new:
            specs.append({**_line_trace(name, colors[name]), **_line_placement(k)})
            specs.append({**_marks_trace(name, colors[name]), **_marks_placement(k)})
        first = len(self.figure.data)
        self.figure.add_traces(specs)
        for i, (_, name) in enumerate(new):
            self._traces[name] = (first + 2 * i, first + 2 * i + 1)

    def _place(self, panels: list[list[str]]) -> None:
        """Lay out the panels and move every trace to its panel (or hide it); in a batch."""
        figure = self.figure
        figure.update_layout(_panel_layout(len(panels), self._axes_laid_out))
        self._axes_laid_out = max(self._axes_laid_out, len(panels))
        self._axis_types = {}  # panel numbers may now mean other metrics: set every scale again
        panel_of = {name: k for k, panel in enumerate(panels) for name in panel}
        for name, (line, marks) in self._traces.items():
            k = panel_of.get(name)
            if k is None:
                figure.data[line].visible = False
                figure.data[marks].visible = False
            else:
                figure.data[line].update(_line_placement(k), visible=True)
                figure.data[marks].update(_marks_placement(k), visible=True)
        self._panels = panels
        self._shown = list(panel_of)

    def _update_scales(self, curves: Mapping[str, Curve]) -> None:
        # Same rule as the record's chart: positive values spanning two decades read better on
        # a log axis (a loss falling from 2.3 to 0.001 is otherwise a flat line after step 100).
        for k, panel in enumerate(self._panels):
            low = min(curves[n].min for n in panel)
            high = max(curves[n].max for n in panel)
            kind = "log" if low > 0 and high / low >= 100 else "linear"
            if self._axis_types.get(k) != kind:
                self.figure.layout[_numbered("yaxis", k)].type = kind
                self._axis_types[k] = kind


def _fill(line: Any, marks: Any, curve: Curve, budget: int) -> None:
    steps, values = decimate(*curve.points(), budget)
    bad = ~np.isfinite(values)
    # A per-epoch metric has a handful of points, and a single point draws no line at all.
    line.mode = "lines+markers" if len(steps) <= _SPARSE_POINTS else "lines"
    line.x = steps
    # plotly.js breaks a line at NaN; inf would stretch the axis to nothing, so it is a gap too
    # and the marks trace shows what it was.
    line.y = np.where(bad, np.nan, values) if bad.any() else values
    if curve.nonfinite:  # a running count: once marked, a curve stays marked
        bad_values = values[bad].tolist()
        marks.x = steps[bad]
        marks.y = [0.0 if v == -math.inf else 1.0 for v in bad_values]
        marks.text = [_fmt_value(v) for v in bad_values]
        marks.marker.symbol = [
            "triangle-up" if v == -math.inf else "triangle-down" for v in bad_values
        ]


# ------------------------------------------------------------------ figure specification


def _base_layout() -> dict[str, Any]:
    return {
        "template": "plotly_white",
        "margin": _MARGIN,
        "height": _panel_height(1),
        # Keeps the user's zoom and hidden traces across redraws.
        "uirevision": "nbtrack",
        "hovermode": "x unified",
        "font": {"size": 11},
        "showlegend": True,
    }


def _line_trace(name: str, color: str) -> dict[str, Any]:
    return {
        "type": "scatter",
        "mode": "lines",
        "name": name,
        "legendgroup": name,
        "line": {"color": color, "width": 1.5},
        "marker": {"color": color, "size": 5},
        "hovertemplate": "%{y:.5g}",
    }


def _marks_trace(name: str, color: str) -> dict[str, Any]:
    return {
        "type": "scatter",
        "mode": "markers",
        "name": f"{name} (non-finite)",
        "legendgroup": name,
        "showlegend": False,
        "cliponaxis": False,
        "marker": {"color": color, "size": 10, "line": {"color": _ALARM, "width": 1.5}},
        "hovertemplate": "%{text}",
        "x": [],
        "y": [],
    }


def _line_placement(k: int) -> dict[str, Any]:
    return {
        "xaxis": _numbered("x", k),
        "yaxis": _numbered("y", k),
        "legend": _numbered("legend", k),
    }


def _marks_placement(k: int) -> dict[str, Any]:
    # Marks live on an invisible [0, 1] axis over the panel, so they sit on its edge whatever the
    # panel's range or scale.
    return {"xaxis": _numbered("x", k), "yaxis": _numbered("y", _MAX_PANELS + k)}


def _panel_layout(n_panels: int, laid_out_before: int) -> dict[str, Any]:
    """Axes, legends and height for ``n_panels`` panels in up to two columns."""
    cols = 1 if n_panels <= 1 else 2
    rows = max(1, math.ceil(n_panels / cols))
    height = _panel_height(rows)
    paper = height - _MARGIN["t"] - _MARGIN["b"]
    row_px = _LEGEND_PX + _PLOT_PX + _TICKS_PX
    layout: dict[str, Any] = {"height": height}
    for k in range(n_panels):
        row, col = divmod(k, cols)
        top = 1 - (row * row_px + _LEGEND_PX) / paper
        bottom = 1 - (row * row_px + _LEGEND_PX + _PLOT_PX) / paper
        left = col / cols + (_COLUMN_GAP / 2 if col > 0 else 0)
        right = (col + 1) / cols - (_COLUMN_GAP / 2 if col < cols - 1 else 0)
        x, y = _numbered("x", k), _numbered("y", k)
        layout[_numbered("xaxis", k)] = {
            "domain": [left, right], "anchor": y, "visible": True, "showgrid": True,
        }  # fmt: skip
        layout[_numbered("yaxis", k)] = {
            "domain": [bottom, top], "anchor": x, "visible": True, "exponentformat": "power",
        }  # fmt: skip
        layout[_numbered("yaxis", _MAX_PANELS + k)] = {
            "overlaying": y, "anchor": x, "range": [0, 1], "visible": False, "fixedrange": True,
        }  # fmt: skip
        layout[_numbered("legend", k)] = {
            "x": left, "y": top, "xanchor": "left", "yanchor": "bottom", "orientation": "h",
            "bgcolor": "rgba(0,0,0,0)", "visible": True,
        }  # fmt: skip
    for k in range(n_panels, laid_out_before):
        layout[_numbered("xaxis", k)] = {"visible": False}
        layout[_numbered("yaxis", k)] = {"visible": False}
        layout[_numbered("legend", k)] = {"visible": False}
    return layout


def _panel_height(rows: int) -> int:
    return _MARGIN["t"] + _MARGIN["b"] + rows * (_LEGEND_PX + _PLOT_PX + _TICKS_PX)


def _numbered(name: str, k: int) -> str:
    """plotly's name for panel ``k``'s axis or legend: ``x``, ``x2``, ``yaxis2``, ``legend3``."""
    return name if k == 0 else f"{name}{k + 1}"


def _points_per_curve(n_curves: int) -> int:
    share = _POINTS_TOTAL // max(1, n_curves)
    return max(_POINTS_PER_CURVE_MIN, min(_POINTS_PER_CURVE_MAX, share))


def _change_key(run: Run) -> tuple[int, int, str]:
    # Curve versions only grow, so their sum changes exactly when some curve changed.
    curves = run.curves
    return len(curves), sum(c.version for c in curves.values()), run.sync_state


# ------------------------------------------------------------------ the status line


def _status_html(
    run: Run,
    now_ms: int,
    first_bad: Mapping[str, tuple[float, float]],
    hidden: int,
    problem: str | None,
) -> str:
    """The status line: every text from the run is escaped; the only link is an http(s) URL."""
    curves = run.curves
    parts = [_run_link(run)]
    if curves:
        step = max(c.last_step for c in curves.values())
        parts.append(f"step {html.escape(_fmt_step(step))}")
    parts.append(_fmt_elapsed((now_ms - run.start_time_ms) / 1000))
    values = [
        f"{html.escape(name)} <b style='color:{_ALARM}' title='non-finite value'>"
        f"{html.escape(_fmt_value(c.last))}</b>"
        if not math.isfinite(c.last)
        else f"{html.escape(name)} <b>{html.escape(_fmt_value(c.last))}</b>"
        for name, c in list(curves.items())[:_STATUS_VALUES]
    ]
    if len(curves) > _STATUS_VALUES:
        values.append(f"+{len(curves) - _STATUS_VALUES} more")
    parts.extend(values)
    parts.append(_sync_html(run.sync_state, run.pending_points))
    lines = [" · ".join(parts)]
    lines.extend(_divergence_lines(curves, first_bad))
    if hidden:
        lines.append(
            f"{hidden} more metrics are not charted here (too many panels); "
            "they are logged to MLflow"
        )
    if problem:
        lines.append(html.escape(problem))
    body = "".join(f"<div>{line}</div>" for line in lines)
    return (
        "<div class='nbtrack-live-status' style='font-size:12px;line-height:1.5;"
        f"font-variant-numeric:tabular-nums'>{body}</div>"
    )


def _run_link(run: Run) -> str:
    name = html.escape(run.run_name)
    label = f"<b>{name}</b>"
    if run.experiment_name:
        label += f" in {html.escape(run.experiment_name)}"
    url = safe_link(run.ui_url)
    if url is None:
        return label
    return (
        f"<a href='{html.escape(url, quote=True)}' target='_blank' rel='noopener noreferrer' "
        f"title='open this run in the MLflow UI'>{label}</a>"
    )


def _sync_html(state: str, pending: int) -> str:
    if state == "synced":
        return "<span style='color:#1a7f37'>✓ synced</span>"
    if state == "offline":
        return (
            f"<span style='color:{_ALARM}'>⚠ offline: {pending:,} points wait in the local "
            "spool</span>"
        )
    queued = f" ({pending:,} points queued)" if pending else ""
    return f"<span style='color:#59636e'>↻ syncing to MLflow{queued}</span>"


def _divergence_lines(
    curves: Mapping[str, Curve], first_bad: Mapping[str, tuple[float, float]]
) -> list[str]:
    diverged = [(name, c) for name, c in curves.items() if c.nonfinite]
    lines = []
    for name, curve in diverged[:_STATUS_DIVERGED]:
        where = ""
        if name in first_bad:
            step, value = first_bad[name]
            where = f" became {_fmt_value(value)} at step {_fmt_step(step)}"
        text = (
            f"⚠ {name}{where}: {curve.nonfinite:,} non-finite value"
            f"{'s' if curve.nonfinite != 1 else ''} (NaN/inf) — the run may have diverged"
        )
        lines.append(f"<span style='color:{_ALARM}'>{html.escape(text)}</span>")
    if len(diverged) > _STATUS_DIVERGED:
        more = len(diverged) - _STATUS_DIVERGED
        lines.append(
            f"<span style='color:{_ALARM}'>⚠ {more} more metrics have NaN/inf values</span>"
        )
    return lines


def _fmt_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.4g}"


def _fmt_step(step: float) -> str:
    return f"{int(step):,}" if step.is_integer() else f"{step:g}"


def _fmt_elapsed(seconds: float) -> str:
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _now_ms() -> int:
    return int(time.time() * 1000)


# ------------------------------------------------------------------ configuration and plotly


def _interval_from_env() -> float:
    text = os.environ.get("NBTRACK_PLOT_INTERVAL")
    if text is None:
        return _DEFAULT_INTERVAL_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        warnings.warn(
            f"NBTRACK_PLOT_INTERVAL={text!r} is not a number of seconds >= 0; using the "
            f"default {_DEFAULT_INTERVAL_S}. Set it to e.g. 0.5 or unset it.",
            NbtrackWarning,
            stacklevel=3,
        )
        return _DEFAULT_INTERVAL_S
    return value


_plotly_imported = threading.Event()
_plotly_error: BaseException | None = None
_import_lock = threading.Lock()
_import_started = False


def _start_plotly_import() -> None:
    """Import plotly's widget in a background thread, once per kernel."""
    global _import_started  # noqa: PLW0603 - one import per process, shared by every plot
    with _import_lock:
        if _import_started:
            return
        _import_started = True
    if "plotly.basewidget" in sys.modules:
        _plotly_imported.set()
        return
    threading.Thread(target=_import_plotly, name="nbtrack-plotly-import", daemon=True).start()


def _import_plotly() -> None:
    global _plotly_error  # noqa: PLW0603
    try:
        import plotly.basewidget  # noqa: F401 - the slow part: FigureWidget's module
        import plotly.graph_objects as go

        # Building a plain figure of the same shape loads the validators the first
        # FigureWidget needs, so the redraw that builds it stays short.
        go.Figure(
            data=[
                {**_line_trace("warm-up", "#000000"), **_line_placement(0)},
                {**_marks_trace("warm-up", "#000000"), **_marks_placement(0)},
            ],
            layout={**_base_layout(), **_panel_layout(1, 0)},
        )
    except Exception as error:  # noqa: BLE001 - reported in the status line instead of a chart
        _plotly_error = error
    finally:
        _plotly_imported.set()


def _close_widget(widget: Any) -> None:
    # A DOM widget's layout and style are widget models of their own: close them too, or they
    # linger in the kernel and in the saved notebook's widget state.
    for attr in ("layout", "style"):
        part = getattr(widget, attr, None)
        if part is not None and hasattr(part, "close") and hasattr(part, "comm"):
            part.close()
    widget.close()
