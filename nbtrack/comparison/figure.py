"""The comparison as one plotly Figure: the params that differ, overlaid curves per panel, and a
link to MLflow's own comparison of the same runs.

Plotly is imported here only, when a comparison is drawn: never when nbtrack is imported.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from nbtrack.comparison.curves import RunCurves, Series
from nbtrack.record.axes import AXIS_TITLES, time_unit
from nbtrack.record.format import MISSING
from nbtrack.record.metrics import series_color

__all__ = ["MAX_PANELS", "X_CHOICES", "build_figure"]

X_CHOICES = ("auto", "step", "relative", "wall")
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
_CHART_HEIGHT = 300
_TABLE_ROW = 24
# Charts drawn at most, in panel order (as many metrics as a record carries curves of): a page
# of charts to read, and plotly's cost grows with the square of the subplots (1,600 took a
# minute). The others are named as left out; ``metrics=`` picks which are drawn.
MAX_PANELS = 24


def build_figure(
    runs: Sequence[RunCurves],
    panels: Sequence[tuple[list[str], str]],
    differing: Sequence[tuple[str, Sequence[str | None]]],
    *,
    x: str,
    compare_url: str | None,
) -> Any:
    """A ``plotly.graph_objects.Figure``: a table of ``differing`` params (name, one value per
    run), then one chart per panel (the first ``MAX_PANELS`` with a curve; the title says how
    many more there were) with every run's curves of its metrics, against the panel's
    own axis (``x="auto"``) or the one asked for. Each run has one colour; a panel's metrics
    differ by dash. Axis ticks have 2-4 significant digits, hover shows the full value."""
    from plotly.subplots import make_subplots

    drawn = [(names, _axis_for(runs, names, axis if x == "auto" else x)) for names, axis in panels]
    drawn = [
        (names, axis) for names, axis in drawn if any(n in r.series for r in runs for n in names)
    ]
    left_out = len(drawn) - MAX_PANELS
    drawn = drawn[:MAX_PANELS]
    cols = 1 if len(drawn) <= 1 else 2
    rows = max(1, math.ceil(len(drawn) / cols))
    table_height = _TABLE_ROW * (len(differing) + 2)
    chart_height = _CHART_HEIGHT * rows
    specs: list[list[Any]] = [[{"type": "table", "colspan": cols}] + [None] * (cols - 1)]
    specs += [[{"type": "xy"} for _ in range(cols)] for _ in range(rows)]
    fig = make_subplots(
        rows=rows + 1,
        cols=cols,
        specs=specs,
        row_heights=[table_height] + [_CHART_HEIGHT] * rows,
        subplot_titles=["", *(", ".join(map(_text, names)) for names, _ in drawn)],
        vertical_spacing=min(0.3 / (rows + 1), 60 / (table_height + chart_height)),
        horizontal_spacing=0.09,
    )
    fig.add_trace(_params_table(runs, differing), row=1, col=1)
    legend_seen: set[str] = set()
    for index, (names, axis) in enumerate(drawn):
        row, col = 2 + index // cols, 1 + index % cols
        unit, unit_name = _unit(runs, names, axis)
        for run_index, run in enumerate(runs):
            for metric_index, name in enumerate(names):
                series = run.series.get(name)
                if series is None:
                    continue
                trace = _trace(run, name, series, axis, unit=(unit, unit_name))
                trace.update(
                    line={"color": series_color(run_index), "dash": _DASHES[metric_index % 6]},
                    legendgroup=run.label,
                    showlegend=f"{run.label}·{name}" not in legend_seen,
                )
                legend_seen.add(f"{run.label}·{name}")
                fig.add_trace(trace, row=row, col=col)
        title = AXIS_TITLES[axis] + (f" ({unit_name})" if axis == "relative" else "")
        fig.update_xaxes(title_text=title, row=row, col=col, **_x_format(axis))
        fig.update_yaxes(tickformat=".3~g", row=row, col=col)
    link = (
        f'<a href="{html.escape(compare_url, quote=True)}">Compare these runs in MLflow ↗</a>'
        if compare_url
        else "Start the MLflow UI (%track_ui) to compare these runs there too"
    )
    # The legend sits under the charts, in the bottom margin, sized for its rows.
    legend_height = 22 * math.ceil(len(legend_seen) / 3) + 50
    if left_out > 0:
        link += f" · {left_out} more panels not drawn: choose with metrics=[...]"
    fig.update_layout(
        title={"text": f"Comparing {len(runs)} runs<br><sup>{link}</sup>", "x": 0.01},
        height=table_height + chart_height + 90 + legend_height,
        margin={"t": 90, "l": 60, "r": 20, "b": legend_height},
        hovermode="closest",
        legend={"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom"},
        meta={"mlflow_compare_url": compare_url, "runs": [r.label for r in runs]},
        template="plotly_white",
    )
    return fig


def _axis_for(runs: Sequence[RunCurves], names: Sequence[str], axis: str) -> str:
    """``axis``, unless a curve of the panel has no times (records before schema 3): then the
    step, the only axis every curve has."""
    if axis == "step":
        return axis
    for run in runs:
        for name in names:
            series = run.series.get(name)
            if series is not None and (
                series.times is None or (axis == "wall" and not run.start_ms)
            ):
                return "step"
    return axis


def _unit(runs: Sequence[RunCurves], names: Sequence[str], axis: str) -> tuple[float, str]:
    if axis != "relative":
        return 1.0, ""
    ends = [s.times[-1] for r in runs for n in names if (s := r.series.get(n)) and s.times]
    return time_unit(max(ends, default=0.0))


def _trace(run: RunCurves, name: str, series: Series, axis: str, *, unit: tuple[float, str]) -> Any:
    import plotly.graph_objects as go

    divisor, unit_name = unit
    values = [v if math.isfinite(v) else None for v in series.values]
    if axis == "step":
        xs: list[Any] = series.steps
        x_hover = "step %{x}"
    elif axis == "relative":
        xs = [t / divisor for t in series.times or ()]
        x_hover = f"%{{x:.4~g}} {unit_name} since start"
    else:
        import pandas as pd

        start = run.start_ms or 0
        stamps = pd.to_datetime(
            [start + t * 1000 for t in series.times or ()], unit="ms", errors="coerce"
        )
        # A time beyond pandas' calendar (a record from anyone) is a gap, not an error for all.
        xs = [None if pd.isna(stamp) else stamp for stamp in stamps]
        x_hover = "%{x|%Y-%m-%d %H:%M:%S}"
    label = f"{_text(run.label)} · {_text(name)}"
    # A hover template reads %{...} as its fields: a name's % is shown (&#37;), never read.
    in_template = label.replace("%", "&#37;")
    return go.Scatter(
        x=xs,
        y=values,
        mode="lines+markers" if len(xs) < 40 else "lines",
        marker={"size": 4},
        name=label,
        # Full precision on hover; the axes round to 2-4 significant digits.
        hovertemplate=f"{in_template}<br>{x_hover}<br>%{{y:.10~g}}<extra></extra>",
    )


def _x_format(axis: str) -> dict[str, Any]:
    if axis == "wall":
        return {"type": "date"}
    return {"tickformat": "~s" if axis == "step" else ".3~g"}


def _params_table(
    runs: Sequence[RunCurves], differing: Sequence[tuple[str, Sequence[str | None]]]
) -> Any:
    import plotly.graph_objects as go

    header = ["param that differs", *(run.label for run in runs)]
    if differing:
        columns: list[list[str]] = [[name for name, _ in differing]]
        for i in range(len(runs)):
            columns.append([_cell(values[i]) for _, values in differing])
    else:
        columns = [["(every param is the same)"], *([""] for _ in runs)]
    return go.Table(
        header={"values": [_text(h) for h in header], "align": "left"},
        cells={"values": [[_text(c) for c in col] for col in columns], "align": "left"},
    )


def _cell(value: str | None) -> str:
    return MISSING if value is None else value


def _text(text: str) -> str:
    """Text from a run (names, params) as plotly shows it, as written.

    Plotly draws tags in names, titles, hover labels and table cells (``<a href>``, ``<b>``,
    ``<span style>``), in the notebook and in ``write_html`` files, and decodes ``&lt;``,
    ``&gt;``, ``&amp;`` and numeric entities, but not ``&quot;``: so &, < and > are escaped,
    and quotes are not.
    """
    return html.escape(text, quote=False)
