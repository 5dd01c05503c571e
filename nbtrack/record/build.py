"""A run's record: the JSON document and the display bundle that carries it.

``build_bundle`` turns a run (finished, failed, interrupted or still running) into one display
bundle that IPython shows with ``display(bundle, raw=True)``. The JSON record is bounded in
size (curves min/max decimated, params and messages capped) and free of credentials; the
three renderings are then drawn from the JSON alone.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nbtrack._model import RunFailure
from nbtrack._redact import is_secret_name, redact_text, safe_link, strip_uri_credentials
from nbtrack._version import VERSION
from nbtrack.record.axes import panel_axes
from nbtrack.record.html import render_html
from nbtrack.record.metrics import group_metrics, metric_goal
from nbtrack.record.png import render_png
from nbtrack.record.schema import MIME_TYPE, SCHEMA_VERSION, RecordSource
from nbtrack.record.svg import render_chart
from nbtrack.record.sweep import sweep_json
from nbtrack.record.text import render_text

if TYPE_CHECKING:
    from nbtrack._curves import Curve

__all__ = ["build_bundle"]

# Size budget. nbformat saves JSON outputs indented, one number per line, so a curve point
# (step, value, time) costs ~50 bytes in the .ipynb: 600 points in all keep a long run's record
# near 75 KB, its PNG and SVG renderings included.
_CURVE_POINTS_TOTAL = 600
_CURVE_POINTS_MANY = 400
_CURVE_POINTS_MAX = 300
_CURVE_POINTS_MIN = 16
# However many metrics a run logs (one per layer, per class, ...), the record carries the curves
# of the first panels only, last/best summaries of the next metrics, and a count of the rest,
# which stay in MLflow: each summary costs ~250 bytes, each curve at least 16 points.
_MAX_CURVES = 24
_MAX_METRICS = 32
_MAX_PARAMS = 200
_MAX_PARAM_CHARS = 500
_MAX_MESSAGE_CHARS = 1000


def _json_number(value: float, digits: int) -> float | int | str:
    """A finite float rounded to ``digits`` significant digits; NaN/inf as the schema's strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    rounded = float(f"{value:.{digits}g}")
    # Rounding 1.79769e308 up would overflow to inf, which JSON cannot hold.
    return rounded if math.isfinite(rounded) else value


def _json_step(step: float) -> int | float:
    return int(step) if step.is_integer() else round(step, 3)


_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")


def _scrub_text(text: str, limit: int) -> str:
    """Free text (an exception message, a param value) with credentials removed (the text
    rules, and credentials in any URL in it), cut to ``limit`` characters. Values reach the
    record redacted already; this holds for a record built from anything else too."""
    cleaned = redact_text(_URL_IN_TEXT.sub(lambda m: strip_uri_credentials(m.group(0)), text))
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _points_per_curve(n_curves: int) -> int:
    if n_curves == 0:
        return _CURVE_POINTS_MAX
    # Many small panels are read at a glance: they share fewer points than a few large ones.
    total = _CURVE_POINTS_TOTAL if n_curves <= 12 else _CURVE_POINTS_MANY
    return min(_CURVE_POINTS_MAX, max(_CURVE_POINTS_MIN, total // n_curves))


def _summary_json(name: str, curve: Curve) -> dict[str, Any]:
    """A metric's entry without its curve: statistics over every point ever logged."""
    has_finite = curve.count > curve.nonfinite
    goal = metric_goal(name)
    best: float | int | str | None = None
    best_step: int | float | None = None
    if goal is not None and has_finite:
        value, step = (curve.min, curve.min_step) if goal == "min" else (curve.max, curve.max_step)
        best, best_step = _json_number(value, 7), _json_step(step)
    return {
        "last": _json_number(curve.last, 7) if curve.count else None,
        "last_step": _json_step(curve.last_step) if curve.count else None,
        "min": _json_number(curve.min, 7) if has_finite else None,
        "max": _json_number(curve.max, 7) if has_finite else None,
        "goal": goal,
        "best": best,
        "best_step": best_step,
        "count": curve.count,
        "nonfinite": curve.nonfinite,
    }


def _curve_json(curve: Curve, max_points: int, start_s: float) -> dict[str, Any]:
    """A curve in step order, decimated to ``max_points`` (steps, values, and times in seconds
    since the run's start when every kept point has one)."""
    # Imported here, not at the top: numpy stays out of the Jupyter server and `nbtrack show`,
    # which read records (and import this package) but never build one.
    from nbtrack._decimate import kept_indices

    steps, values, unix_times = curve.in_step_order()
    keep = kept_indices(values, max_points)
    out: dict[str, Any] = {
        "steps": [_json_step(s) for s in steps[keep].tolist()],
        # Five significant digits: far finer than a chart can show, half the bytes of repr.
        "values": [_json_number(v, 5) for v in values[keep].tolist()],
    }
    seconds = (unix_times[keep] - start_s).tolist()
    if seconds and all(math.isfinite(t) for t in seconds):
        decimals = _time_decimals(max(seconds) - min(seconds))
        out["times"] = [round(max(t, 0.0), decimals) for t in seconds]
    return out


def _time_decimals(span_s: float) -> int:
    """Decimals that give a time axis ~4 significant digits: ms for a few seconds, whole
    seconds for hours."""
    if span_s <= 0:
        return 3
    return min(3, max(0, 3 - math.floor(math.log10(span_s))))


def _metrics_json(
    curves: Mapping[str, Curve], start_s: float
) -> tuple[dict[str, Any], list[list[str]], int]:
    """The record's metric entries and panels, and how many metrics it leaves out.

    Panels come first: whole panels, in order, get their curves until ``_MAX_CURVES`` are
    carried; the metrics after them get summaries until ``_MAX_METRICS`` entries; the rest are
    only counted.
    """
    ranges = {name: (c.min, c.max) for name, c in curves.items() if c.count > c.nonfinite}
    with_curve: set[str] = set()
    kept: list[list[str]] = []
    n_entries = 0
    curves_open = True
    for panel in group_metrics(curves, ranges):
        if n_entries + len(panel) > _MAX_METRICS:
            break
        if curves_open and len(with_curve) + len(panel) <= _MAX_CURVES:
            with_curve.update(panel)
        else:
            curves_open = False  # the curves are those of the first panels, none further on
        kept.append(panel)
        n_entries += len(panel)
    per_curve = _points_per_curve(len(with_curve))
    metrics: dict[str, Any] = {}
    for panel in kept:
        for name in panel:
            entry = _summary_json(name, curves[name])
            if name in with_curve:
                entry["curve"] = _curve_json(curves[name], per_curve, start_s)
            metrics[name] = entry
    return metrics, kept, len(curves) - n_entries


def _record_json(src: RecordSource) -> dict[str, Any]:
    end = src.end_time_ms
    params = {k: _scrub_text(str(v), _MAX_PARAM_CHARS) for k, v in src.params.items()
              if not is_secret_name(k)}  # fmt: skip
    kept_params = dict(list(params.items())[:_MAX_PARAMS])
    metrics, panels, omitted = _metrics_json(src.curves, src.start_time_ms / 1000)
    record: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "nbtrack_version": VERSION,
        "run": {
            "id": src.run_id,
            "name": src.run_name,
            "experiment_id": src.experiment_id,
            "experiment_name": src.experiment_name,
            "status": src.status,
            "start_time": int(src.start_time_ms),
            "end_time": None if end is None else int(end),
            "duration_s": None if end is None else round((end - src.start_time_ms) / 1000, 3),
        },
        "tracking_uri": strip_uri_credentials(src.tracking_uri) if src.tracking_uri else None,
        "ui_url": safe_link(src.ui_url),
        "notebook": {"path": src.notebook_path, "cell_id": src.cell_id},
        "params": kept_params,
        "params_omitted": len(params) - len(kept_params),
        "metrics": metrics,
        "metrics_omitted": omitted,
        # A list, unlike the metrics object: nbformat sorts object keys when it saves a
        # notebook, so the order in which the run logged its metrics survives only here.
        "panels": panels,
        "panel_x": panel_axes(panels, metrics),
        "error": None,
        "sync": {"state": src.sync_state, "pending_points": int(src.pending_points)},
    }
    if src.lost_points or src.lost_items:
        record["sync"].update(
            lost_points=int(src.lost_points),
            lost_items=int(src.lost_items),
            lost_reason=_scrub_text(src.lost_reason or "write error", _MAX_MESSAGE_CHARS),
        )
    if src.sweep is not None:
        record["sweep"] = sweep_json(src.sweep)
    if isinstance(src.error, RunFailure):
        record["error"] = {
            "type": src.error.type,
            "message": _scrub_text(src.error.message, _MAX_MESSAGE_CHARS),
            "step": src.error.step,
        }
    return record


def build_bundle(src: RecordSource, *, png: bool = True) -> dict[str, Any]:
    """The run's record as a display bundle: MIME type -> data, for ``display(..., raw=True)``.

    Holds ``application/vnd.nbtrack.run+json`` (the record, see docs/record-schema.md),
    ``text/html`` (summary card with the chart embedded as an image), ``image/svg+xml`` and
    ``image/png`` (the chart; absent when the run logged no metric) and ``text/plain``.
    ``png=False`` leaves the PNG out (the live view's redraws: the HTML card then embeds the
    SVG). Curves are min/max decimated to at most 900 points in all, and at most 100 metrics are
    listed, so a long run adds tens of kilobytes to the notebook, not megabytes.
    """
    record = _record_json(src)
    svg = render_chart(record)
    image = render_png(svg) if png and svg is not None else None
    bundle: dict[str, Any] = {
        MIME_TYPE: record,
        "text/html": render_html(record, svg, image),
        "text/plain": render_text(record),
    }
    if svg is not None:
        bundle["image/svg+xml"] = svg
    if image is not None:
        bundle["image/png"] = base64.b64encode(image).decode("ascii")
    return bundle
