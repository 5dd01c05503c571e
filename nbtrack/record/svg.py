"""``image/svg+xml``: a record's curves as small multiples, one panel per group of metrics.

The SVG is drawn from the record's JSON, not from the run, so it shows exactly what the file
holds; it is also what the HTML card embeds. Text from the run is escaped, and nothing is
loaded from anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nbtrack.record.axes import AXIS_TITLES, time_unit
from nbtrack.record.format import escape, fmt_value, from_json_number
from nbtrack.record.metrics import ALARM_COLOR, series_color
from nbtrack.record.schema import record_layout
from nbtrack.record.sweep import trial_series

__all__ = ["CHART_WIDTH", "render_chart"]

CHART_WIDTH = 640
_MAX_PANELS = 6
_PAD_LEFT, _PAD_RIGHT, _PAD_TOP, _PAD_BOTTOM = 46, 12, 4, 30
_LEGEND_ROW = 15
_CHART_CLIP = 1e300
_CHAR_WIDTH = 6.2  # average advance of an 11px sans-serif glyph, for legend layout
# Axes drawn against the step; "trial" is a sweep parent's, whose step is the trial number.
_BY_STEP = ("step", "trial")


@dataclass(frozen=True)
class _Line:
    name: str
    color: str
    steps: Sequence[float]
    values: Sequence[float]
    nonfinite: int
    # Seconds since the run started, one per point; None when the record has none.
    times: Sequence[float] | None


def render_chart(record: Mapping[str, Any]) -> str | None:
    """The record's curves as an SVG image, or None when it has no curve to draw.

    One panel for each of the record's ``panels`` that has curves (``record_layout``), the
    first eight of them, each with its own axes, tick labels, legend and x axis title: the step
    or the time since the run started, as the record's ``panel_x`` says. A panel whose values
    are positive and span two decades or more uses a log scale. NaN and +inf are marked by
    red-edged triangles on the top edge, -inf on the bottom edge. Each panel is a
    ``<g class='panel'>`` whose legend is a ``<g class='legend'>`` and whose x axis title is a
    ``<text class='x-title'>``, so that the panels can be read back from the image.
    """
    metrics: Mapping[str, Any] = record["metrics"]
    lines: dict[str, _Line] = {}
    for i, (name, m) in enumerate(metrics.items()):
        curve = m.get("curve")
        if not isinstance(curve, Mapping):
            continue  # a metric listed with its summary only
        values = [from_json_number(v) for v in curve["values"]]
        times = curve.get("times")
        if not isinstance(times, list) or len(times) != len(values):
            times = None
        lines[name] = _Line(name, series_color(i), curve["steps"], values, m["nonfinite"], times)
    layout = [
        (drawn, axis)
        for panel, axis in record_layout(record)
        if (drawn := [name for name in panel if name in lines])
    ]
    trials = trial_series(record)  # a sweep: its trials' curves of its metric come first
    hidden = sum(len(p) for p, _ in layout[_MAX_PANELS - bool(trials) :])
    hidden += len(metrics) - len(lines) + (record.get("metrics_omitted") or 0)
    for label, color, steps, values in trials:
        lines[label] = _Line(label, color, steps, values, 0, None)
    if trials:  # a sweep's parent: its own curves are its trials' values, one per trial
        layout = [([t[0] for t in trials], "step")] + [(p, "trial") for p, _ in layout]
    if not layout:
        return None
    layout = layout[:_MAX_PANELS]
    panels = [panel for panel, _ in layout]
    axes = [axis for _, axis in layout]
    cols = 1 if len(panels) == 1 else 2
    panel_width = CHART_WIDTH // cols
    plot_height = 150 if cols == 1 else 110

    body: list[str] = []
    y = 0.0
    for row_start in range(0, len(panels), cols):
        row = panels[row_start : row_start + cols]
        legends = [_legend_layout([lines[n] for n in p], panel_width) for p in row]
        legend_height = max(rows for _, rows in legends) * _LEGEND_ROW
        row_axes = axes[row_start : row_start + cols]
        for col, (names, (legend, _)) in enumerate(zip(row, legends, strict=True)):
            x = col * panel_width
            panel = [lines[n] for n in names]
            body.append("<g class='panel'>")
            body.extend(
                _svg_panel(
                    x,
                    y,
                    panel,
                    legend,
                    size=(panel_width, legend_height, plot_height),
                    axis=row_axes[col],
                )
            )
            body.append("</g>")
        y += _PAD_TOP + legend_height + plot_height + _PAD_BOTTOM + 8
    if hidden:
        body.append(
            f"<text x='4' y='{y + 4:.0f}' fill='#59636e'>{hidden:,} more metrics are not "
            "drawn: see the table and MLflow</text>"
        )
        y += 14
    height = math.ceil(y)
    title = f"metrics of nbtrack run {record['run']['name']}"
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{CHART_WIDTH}' height='{height}' "
        f"viewBox='0 0 {CHART_WIDTH} {height}' font-family='Helvetica,Arial,sans-serif' "
        f"font-size='11' role='img' aria-label='{escape(title)}'>"
        f"<title>{escape(title)}</title><rect width='100%' height='100%' fill='#ffffff'/>"
        + "".join(body)
        + "</svg>"
    )


def _legend_layout(
    lines: Sequence[_Line], panel_width: int
) -> tuple[list[tuple[float, int, _Line, str]], int]:
    """Legend entries as (x offset, row, line, label), wrapped to the panel's width."""
    entries = []
    x, row = 0.0, 0
    available = panel_width - _PAD_LEFT - _PAD_RIGHT
    max_chars = int((available - 60) / _CHAR_WIDTH)
    for line in lines:
        label = line.name if len(line.name) <= max_chars else line.name[: max_chars - 1] + "…"
        if line.nonfinite:
            label += f" ({line.nonfinite} NaN/inf)"
        width = 18 + len(label) * _CHAR_WIDTH + 12
        if x > 0 and x + width > available:
            x, row = 0.0, row + 1
        entries.append((x, row, line, label))
        x += width
    return entries, row + 1


def _svg_panel(
    x0: float,
    y0: float,
    lines: Sequence[_Line],
    legend: Sequence[tuple[float, int, _Line, str]],
    size: tuple[int, int, int],
    *,
    axis: str = "step",
) -> list[str]:
    """One panel at (x0, y0); size is (width, legend height, plot height); ``axis`` is
    ``"step"`` or ``"relative"`` (drawn against the step when a curve has no times)."""
    width, legend_height, plot_height = size
    left = x0 + _PAD_LEFT
    right = x0 + width - _PAD_RIGHT
    top = y0 + _PAD_TOP + legend_height
    bottom = top + plot_height
    out: list[str] = ["<g class='legend'>"]
    for dx, row, line, label in legend:
        text_color = ALARM_COLOR if line.nonfinite else "#1f2328"
        lx, ly = left + dx, y0 + _PAD_TOP + row * _LEGEND_ROW + 10
        out.append(
            f"<path d='M{lx:.1f},{ly - 4:.1f}h14' stroke='{line.color}' stroke-width='2.5'/>"
            f"<text x='{lx + 18:.1f}' y='{ly:.1f}' fill='{text_color}'>{escape(label)}</text>"
        )
    out.append("</g>")

    if axis not in _BY_STEP and any(line.times is None for line in lines):
        axis = "step"
    xs_of = {id(line): (line.steps if axis in _BY_STEP else line.times) or () for line in lines}
    # Clipped so that differences of extreme values (a diverging 1e308) stay finite.
    finite = [
        min(max(v, -_CHART_CLIP), _CHART_CLIP)
        for line in lines
        for v in line.values
        if math.isfinite(v)
    ]
    x_scale = _XScale.fit([x for xs in xs_of.values() for x in xs], axis)
    y_scale = _YScale.fit(finite)

    def px(x: float) -> float:
        # In halves: steps of ±1e308 do not overflow (tiny ones' span may halve to 0: middle).
        low, span = x_scale.low / 2, x_scale.high / 2 - x_scale.low / 2
        return left + ((x / 2 - low) / span if span else 0.5) * (right - left)

    def py(value: float) -> float:
        return bottom - y_scale.fraction(value) * plot_height

    # Frame, horizontal grid and y labels.
    for fraction, label in y_scale.ticks():
        ty = bottom - fraction * plot_height
        out.append(
            f"<path d='M{left:.1f},{ty:.1f}H{right:.1f}' stroke='#eaeef2'/>"
            f"<text x='{left - 4:.1f}' y='{ty + 3.5:.1f}' text-anchor='end' fill='#59636e'>"
            f"{escape(label)}</text>"
        )
    if y_scale.log:
        out.append(
            f"<text x='{x0 + 2:.1f}' y='{top - 2:.1f}' fill='#59636e' font-size='9'>log</text>"
        )
    for tick, label in x_scale.ticks(6 if width > 400 else 4):
        tx = px(tick)
        out.append(
            f"<path d='M{tx:.1f},{bottom:.1f}v3' stroke='#8c959f'/>"
            f"<text x='{tx:.1f}' y='{bottom + 14:.1f}' text-anchor='middle' fill='#59636e'>"
            f"{escape(label)}</text>"
        )
    out.append(
        f"<text class='x-title' x='{(left + right) / 2:.1f}' y='{bottom + 26:.1f}' "
        f"text-anchor='middle' fill='#59636e' font-size='10'>{escape(x_scale.title)}</text>"
    )
    out.append(
        f"<rect x='{left:.1f}' y='{top:.1f}' width='{right - left:.1f}' "
        f"height='{plot_height}' fill='none' stroke='#d0d7de'/>"
    )

    # Curves: at most one point per pixel column pair is visible, so thin them once more.
    from nbtrack._decimate import decimate  # lazily: readers of records need no numpy

    budget = max(4, int(right - left))
    for line in lines:
        steps_arr, values_arr = decimate(xs_of[id(line)], line.values, budget)
        xs = [px(s) for s in steps_arr.tolist()]
        ys_raw = values_arr.tolist()
        segments: list[list[tuple[float, float]]] = [[]]
        marks: list[tuple[float, bool]] = []  # (x, on the top edge)
        for sx, value in zip(xs, ys_raw, strict=True):
            if math.isfinite(value) and (not y_scale.log or value > 0):
                segments[-1].append((sx, py(value)))
                continue
            if segments[-1]:
                segments.append([])
            if not math.isfinite(value):
                marks.append((sx, not value < 0))
        out.extend(_svg_curve(seg, line.color) for seg in segments if seg)
        out.extend(_svg_marks(marks, line.color, top, bottom))
    return out


def _svg_curve(points: Sequence[tuple[float, float]], color: str) -> str:
    if len(points) == 1:
        (cx, cy) = points[0]
        return f"<circle cx='{cx:.1f}' cy='{cy:.1f}' r='2' fill='{color}'/>"
    # Relative moves between coordinates rounded to tenths of a pixel: short, and exact (the
    # rounding happens before the differences, so no error accumulates along the line).
    tenths = [(round(x * 10), round(y * 10)) for x, y in points]
    x_prev, y_prev = tenths[0]
    parts = [f"M{_tenths(x_prev)},{_tenths(y_prev)}l"]
    moves = []
    for x, y in tenths[1:]:
        moves.append(f"{_tenths(x - x_prev)},{_tenths(y - y_prev)}")
        x_prev, y_prev = x, y
    parts.append(",".join(moves))
    return (
        f"<path d='{''.join(parts)}' fill='none' stroke='{color}' stroke-width='1.4' "
        "stroke-linejoin='round'/>"
    )


def _tenths(value: int) -> str:
    if value % 10 == 0:
        return str(value // 10)
    text = f"{value / 10:.1f}"
    return text.replace("0.", ".", 1) if text.startswith(("0.", "-0.")) else text


def _svg_marks(
    marks: Sequence[tuple[float, bool]], color: str, top: float, bottom: float
) -> list[str]:
    """Triangles where a curve went NaN/inf; one per 4 px so a diverged tail stays small."""
    out = []
    last_x: dict[bool, float] = {}
    for x, on_top in marks:
        if abs(x - last_x.get(on_top, -1e9)) < 4:
            continue
        last_x[on_top] = x
        tip, dy = (top, 7) if on_top else (bottom, -7)
        out.append(
            f"<path d='M{x:.1f},{tip:.1f}l4,{dy}h-8z' fill='{color}' stroke='{ALARM_COLOR}'/>"
        )
    return out


def _nice_step(span: float, target_ticks: int) -> float:
    """A round tick spacing (1, 2, 2.5 or 5 times a power of ten) giving ~target_ticks ticks."""
    raw = span / max(1, target_ticks)
    if not raw > 1e-300 or not math.isfinite(raw):
        return 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * magnitude >= raw:
            return float(factor * magnitude)
    return float(10 * magnitude)


def _fmt_step_tick(step: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(step) >= size:
            return f"{step / size:.4g}{suffix}"
    return f"{step:.4g}"


@dataclass(frozen=True)
class _XScale:
    """A panel's horizontal axis: steps, or seconds since the run started labelled in
    seconds, minutes or hours."""

    low: float
    high: float
    unit: float  # axis units per tick unit: 1 for steps, 1/60/3600 for s/min/h
    title: str

    @classmethod
    def fit(cls, xs: Sequence[float], axis: str) -> _XScale:
        low, high = (min(xs), max(xs)) if xs else (0.0, 1.0)
        if axis in _BY_STEP:
            unit, title = 1.0, AXIS_TITLES.get(axis, axis)
        else:  # the ticks count from the run's start; the range spans the points drawn
            unit, unit_name = time_unit(high)
            title = f"{AXIS_TITLES[axis]} ({unit_name})"
        if high == low:
            low, high = low - unit, high + unit
        return cls(low, high, unit, title)

    def ticks(self, target: int) -> list[tuple[float, str]]:
        """(position, label) of round ticks, in the axis' unit."""
        span = (self.high - self.low) / self.unit
        if not math.isfinite(span):  # steps from -1e308 to 1e308 (a record from anyone)
            return []
        spacing = _nice_step(span, target) * self.unit
        first = math.ceil(self.low / spacing) * spacing
        # Counted, not accumulated: at 1e17 adding a small step would never move the tick.
        count = min(12, max(0, math.floor((self.high - first) / spacing + 1e-9) + 1))
        return [
            (first + i * spacing, _fmt_step_tick((first + i * spacing) / self.unit))
            for i in range(count)
        ]


@dataclass(frozen=True)
class _YScale:
    """A panel's vertical axis: linear with round ticks, or log10 with a tick per decade."""

    low: float  # in axis units: the value, or its log10
    high: float
    log: bool
    step: float

    @classmethod
    def fit(cls, finite: Sequence[float]) -> _YScale:
        if not finite:
            return cls(0.0, 1.0, log=False, step=0.5)
        low, high = min(finite), max(finite)
        if low > 0 and high / low >= 100:
            low_decade, high_decade = math.floor(math.log10(low)), math.ceil(math.log10(high))
            return cls(float(low_decade), float(high_decade), log=True, step=1.0)
        if high - low <= 1e-9 * max(abs(low), abs(high)):
            # Flat (or flat to float precision): centre it in a band 10 % of its size.
            pad = abs(low) * 0.05 if abs(low) > 1e-250 else 1.0
            low, high = low - pad, high + pad
        step = _nice_step(high - low, 4)
        return cls(math.floor(low / step) * step, math.ceil(high / step) * step, False, step)

    def fraction(self, value: float) -> float:
        """Where a value sits on the axis, 0 (bottom) to 1 (top)."""
        clipped = min(max(value, -_CHART_CLIP), _CHART_CLIP)
        position = math.log10(clipped) if self.log else clipped
        return (position - self.low) / (self.high - self.low)

    def ticks(self) -> list[tuple[float, str]]:
        """(fraction of the axis, label) of at most six ticks."""
        count = round((self.high - self.low) / self.step)
        stride = max(1, math.ceil((count + 1) / 6))
        ticks = []
        for i in range(0, count + 1, stride):
            position = self.low + i * self.step
            fraction = (position - self.low) / (self.high - self.low)
            if self.log:
                ticks.append((fraction, fmt_value(10.0**position)))
            else:
                value = round(position / self.step) * self.step
                ticks.append((fraction, _fmt_tick(value, self.step)))
        return ticks


def _fmt_tick(value: float, step: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or step < 1e-4:
        return fmt_value(value)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if step * 10**decimals % 1 > 1e-6:  # a 2.5-step needs one more digit
        decimals += 1
    return f"{value:.{decimals}f}"
