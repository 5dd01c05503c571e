"""The record of a run: the display bundle a tracked cell leaves in the saved notebook.

``build_bundle`` turns a run (finished, failed, interrupted or still running) into one display
bundle that IPython shows with ``display(bundle, raw=True)``:

- ``application/vnd.nbtrack.run+json``: the record itself (docs/record-schema.md), read back by
  the lab extension and ``nbtrack show``;
- ``text/html``: a summary card with the chart, for nbconvert/nbviewer, GitHub, VS Code and
  JupyterLab without the extension;
- ``image/svg+xml``: the chart alone;
- ``text/plain``: a few lines for terminals.

The three renderings are drawn from the JSON record, not from the run, so what any viewer shows
is exactly what the file holds. A notebook is shared with anyone: nothing here loads a script or
a remote resource, every text from the run is escaped, and credentials never get in.
"""

from __future__ import annotations

import functools
import html
import json
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from nbtrack._decimate import decimate
from nbtrack._redact import is_secret_name, safe_link, strip_uri_credentials
from nbtrack.errors import InvalidRecordError

if TYPE_CHECKING:
    from nbtrack._curves import Curve

__all__ = [
    "MIME_TYPE",
    "SCHEMA_VERSION",
    "InvalidRecordError",
    "RecordSource",
    "RunFailure",
    "build_bundle",
    "group_metrics",
    "metric_goal",
    "parse_record",
    "render_chart",
    "render_html",
    "render_text",
]

MIME_TYPE = "application/vnd.nbtrack.run+json"
SCHEMA_VERSION = 1

Goal = Literal["min", "max"]
_STATUSES = ("FINISHED", "FAILED", "KILLED", "RUNNING")
_SYNC_STATES = ("synced", "syncing", "offline")

# Size budget. nbformat saves JSON outputs indented, one number per line, so a curve point
# costs ~40 bytes in the .ipynb: 900 points in all keep a long run's record near 35 KB.
_CURVE_POINTS_TOTAL = 900
_CURVE_POINTS_MAX = 300
_CURVE_POINTS_MIN = 16
_MAX_PARAMS = 200
_MAX_PARAM_CHARS = 500
_MAX_MESSAGE_CHARS = 1000
_MAX_TABLE_ROWS = 40


@dataclass(frozen=True)
class RunFailure:
    """Why a run stopped early: the exception's type name and message, and the step it reached."""

    type: str
    message: str
    step: int | None = None


@dataclass(frozen=True)
class RecordSource:
    """Everything a record is built from, gathered by the run when its cell ends.

    ``status`` is one of FINISHED, FAILED, KILLED, RUNNING; ``sync_state`` one of synced,
    syncing, offline. ``error`` is a ``RunFailure`` or a mapping with the same keys (type,
    message, step). ``tracking_uri`` and ``ui_url`` may carry credentials: they are removed
    here. ``params`` should already lack secrets; credential-like names are dropped again.
    """

    run_id: str | None
    run_name: str
    experiment_id: str | None
    experiment_name: str | None
    status: str
    start_time_ms: int
    end_time_ms: int | None
    tracking_uri: str | None
    ui_url: str | None
    notebook_path: str | None
    cell_id: str | None
    params: Mapping[str, str]
    curves: Mapping[str, Curve]
    error: RunFailure | Mapping[str, Any] | None = None
    sync_state: str = "synced"
    pending_points: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.error, Mapping):
            missing = {"type", "message"} - set(self.error)
            if missing:
                msg = f"error needs the keys type and message (step optional), got {self.error!r}"
                raise ValueError(msg)
            failure = RunFailure(
                str(self.error["type"]), str(self.error["message"]), self.error.get("step")
            )
            object.__setattr__(self, "error", failure)  # frozen: normalised once, here
        if self.status not in _STATUSES:
            msg = f"status must be one of {', '.join(_STATUSES)}, got {self.status!r}"
            raise ValueError(msg)
        if self.sync_state not in _SYNC_STATES:
            msg = f"sync_state must be one of {', '.join(_SYNC_STATES)}, got {self.sync_state!r}"
            raise ValueError(msg)


# --------------------------------------------------------------------------------------------
# Metric names: what a metric is for, and which metrics share a chart panel.

_ROLE_WORDS = frozenset(
    {"train", "training", "trn", "val", "valid", "validation", "test", "tst", "eval",
     "evaluation", "dev", "holdout"}
)  # fmt: skip
_MIN_WORDS = frozenset(
    {"loss", "error", "errors", "err", "mse", "rmse", "mae", "nll", "perplexity", "ppl", "wer",
     "cer", "bpc", "bpd"}
)  # fmt: skip
_MAX_WORDS = frozenset(
    {"acc", "accuracy", "f1", "auc", "auroc", "precision", "recall", "score", "map", "iou",
     "miou", "dice", "bleu", "rouge", "top1", "top5"}
)  # fmt: skip
# Words of a name: `valLoss` -> val, loss; `f1_macro` -> f1, macro; `top1Acc` -> top1, acc.
_WORD = re.compile(r"[A-Za-z]?[a-z]*\d+[a-z]*|[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
_MAX_LINES_PER_PANEL = 6
# Curves whose magnitudes differ by more than this factor would flatten each other.
_SCALE_SPLIT = 20.0


def _words(name: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(name)]


def metric_goal(name: str) -> Goal | None:
    """Whether smaller or larger is better for a metric, guessed from its name.

    Losses and errors (loss, error, mse, perplexity, ...) give ``"min"``; accuracies and scores
    (acc, f1, auc, precision, recall, score, ...) give ``"max"``; anything else, or a name that
    says both, gives None.
    """
    words = _words(name)
    wants_min = any(w in _MIN_WORDS or w.endswith("loss") for w in words)
    wants_max = any(w in _MAX_WORDS or w.startswith("acc") for w in words)
    if wants_min == wants_max:
        return None
    return "min" if wants_min else "max"


def _group_key(name: str) -> str:
    words = [w for w in _words(name) if w not in _ROLE_WORDS]
    return "/".join(words) if words else name.lower()


def group_metrics(
    names: Iterable[str], ranges: Mapping[str, tuple[float, float]] | None = None
) -> list[list[str]]:
    """Metrics grouped into chart panels, in first-seen order.

    Names that differ only by a split (``train/loss``, ``val/loss``, ``val_loss``) share a
    panel. Given ``ranges`` (name -> finite (min, max)), a group is split further where
    magnitudes differ by more than 20x, so that no curve is flattened by another; a panel holds
    at most six curves.
    """
    by_key: dict[str, list[str]] = {}
    for name in names:
        by_key.setdefault(_group_key(name), []).append(name)
    panels: list[list[str]] = []
    for group in by_key.values():
        for same_scale in _split_by_scale(group, ranges or {}):
            for start in range(0, len(same_scale), _MAX_LINES_PER_PANEL):
                panels.append(same_scale[start : start + _MAX_LINES_PER_PANEL])
    return panels


def _split_by_scale(group: list[str], ranges: Mapping[str, tuple[float, float]]) -> list[list[str]]:
    clusters: list[tuple[float, list[str]]] = []
    unknown: list[str] = []
    for name in group:
        if name not in ranges:
            unknown.append(name)
            continue
        low, high = ranges[name]
        magnitude = max(abs(low), abs(high))
        for reference, members in clusters:
            if _same_scale(reference, magnitude):
                members.append(name)
                break
        else:
            clusters.append((magnitude, [name]))
    result = [members for _, members in clusters]
    if unknown:
        if result:
            result[0].extend(unknown)
        else:
            result.append(unknown)
    # Keep the original order inside each panel.
    order = {name: i for i, name in enumerate(group)}
    return [sorted(members, key=order.__getitem__) for members in result]


def _same_scale(a: float, b: float) -> bool:
    if a == 0 or b == 0:
        return max(a, b) < 1.0
    return max(a, b) / min(a, b) <= _SCALE_SPLIT


# --------------------------------------------------------------------------------------------
# The JSON record.


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


def _from_json_number(value: object) -> float:
    if isinstance(value, str):
        return float({"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}.get(value, "nan"))
    if isinstance(value, int | float):
        return float(value)
    return math.nan


def _nbtrack_version() -> str:
    try:
        return version("nbtrack")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "unknown"


_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")


def _scrub_text(text: str, limit: int) -> str:
    """Free text (an exception message, a param value) with credentials removed from any URL
    in it, cut to ``limit`` characters."""
    cleaned = _URL_IN_TEXT.sub(lambda m: strip_uri_credentials(m.group(0)), text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _points_per_curve(n_metrics: int) -> int:
    if n_metrics == 0:
        return _CURVE_POINTS_MAX
    return min(_CURVE_POINTS_MAX, max(_CURVE_POINTS_MIN, _CURVE_POINTS_TOTAL // n_metrics))


def _metric_json(name: str, curve: Curve, max_points: int) -> dict[str, Any]:
    has_finite = curve.count > curve.nonfinite
    goal = metric_goal(name)
    best: float | int | str | None = None
    best_step: int | float | None = None
    if goal is not None and has_finite:
        value, step = (curve.min, curve.min_step) if goal == "min" else (curve.max, curve.max_step)
        best, best_step = _json_number(value, 7), _json_step(step)
    steps, values = curve.points()
    steps, values = decimate(steps, values, max_points)
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
        "curve": {
            "steps": [_json_step(s) for s in steps.tolist()],
            # Five significant digits: far finer than a chart can show, half the bytes of repr.
            "values": [_json_number(v, 5) for v in values.tolist()],
        },
    }


def _record_json(src: RecordSource) -> dict[str, Any]:
    end = src.end_time_ms
    params = {k: _scrub_text(str(v), _MAX_PARAM_CHARS) for k, v in src.params.items()
              if not is_secret_name(k)}  # fmt: skip
    kept_params = dict(list(params.items())[:_MAX_PARAMS])
    per_curve = _points_per_curve(len(src.curves))
    record: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "nbtrack_version": _nbtrack_version(),
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
        "metrics": {
            name: _metric_json(name, curve, per_curve) for name, curve in src.curves.items()
        },
        "error": None,
        "sync": {"state": src.sync_state, "pending_points": int(src.pending_points)},
    }
    if isinstance(src.error, RunFailure):
        record["error"] = {
            "type": src.error.type,
            "message": _scrub_text(src.error.message, _MAX_MESSAGE_CHARS),
            "step": src.error.step,
        }
    return record


def build_bundle(src: RecordSource) -> dict[str, Any]:
    """The run's record as a display bundle: MIME type -> data, for ``display(..., raw=True)``.

    Holds ``application/vnd.nbtrack.run+json`` (the record, see docs/record-schema.md),
    ``text/html`` (summary card with the chart embedded as an image), ``image/svg+xml`` (the
    chart; absent when the run logged no metric) and ``text/plain``. Curves are min/max
    decimated to at most 900 points in all, so a long run adds tens of kilobytes to the
    notebook, not megabytes.
    """
    record = _record_json(src)
    svg = render_chart(record)
    bundle: dict[str, Any] = {
        MIME_TYPE: record,
        "text/html": render_html(record, svg),
        "text/plain": render_text(record),
    }
    if svg is not None:
        bundle["image/svg+xml"] = svg
    return bundle


@functools.cache
def _validator() -> Any:
    import jsonschema  # lazily: only readers of records need it, ~0.1 s to import

    schema = json.loads(Path(__file__).with_name("record_schema.json").read_text("utf-8"))
    return jsonschema.Draft202012Validator(schema)


def parse_record(data: object) -> dict[str, Any]:
    """A record read back from a notebook (dict or JSON text), checked against the schema.

    Raises ``InvalidRecordError`` saying where the record is wrong, or that it was written by
    a newer nbtrack (schema version above this one's), in which case upgrading nbtrack helps.
    """
    import jsonschema  # lazily, see _validator

    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except ValueError as exc:
            msg = f"an nbtrack record must be JSON, this is not: {exc}"
            raise InvalidRecordError(msg) from exc
    if not isinstance(data, dict):
        msg = f"an nbtrack record is a JSON object, got {type(data).__name__}"
        raise InvalidRecordError(msg)
    found = data.get("schema")
    if isinstance(found, int) and not isinstance(found, bool) and found > SCHEMA_VERSION:
        msg = (
            f"this record has schema version {found}, written by a newer nbtrack; this "
            f"nbtrack reads version {SCHEMA_VERSION}: upgrade nbtrack (pip install -U nbtrack)"
        )
        raise InvalidRecordError(msg)
    error = jsonschema.exceptions.best_match(_validator().iter_errors(data))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "the top level"
        msg = f"not a valid nbtrack record (schema {SCHEMA_VERSION}): at {where}: {error.message}"
        raise InvalidRecordError(msg)
    return data


# --------------------------------------------------------------------------------------------
# Formatting shared by the renderings.


_MISSING = "\N{EN DASH}"


def _fmt_value(value: object) -> str:
    if value is None:
        return _MISSING
    number = _from_json_number(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    text = f"{number:.4g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


def _fmt_step(step: object) -> str:
    if isinstance(step, int | float) and not isinstance(step, bool):
        return f"{step:g}" if isinstance(step, float) else str(step)
    return "?"


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "still running"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _fmt_time(epoch_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch_ms / 1000))


def _stop_step(record: Mapping[str, Any]) -> object:
    """Where a run stopped: the failing step if known, else the last step any metric reached."""
    error = record.get("error") or {}
    if error.get("step") is not None:
        return error["step"]
    steps = [m["last_step"] for m in record["metrics"].values() if m["last_step"] is not None]
    return max(steps) if steps else None


def _headline(record: Mapping[str, Any]) -> str:
    run = record["run"]
    status = run["status"]
    if status == "RUNNING":
        when = f"since {_fmt_time(run['start_time'])}"
    elif status == "FINISHED":
        when = f"in {_fmt_duration(run['duration_s'])}"
    else:
        when = f"after {_fmt_duration(run['duration_s'])}"
    return f"{status} {when}"


def _stop_line(record: Mapping[str, Any]) -> str | None:
    if record["run"]["status"] not in ("FAILED", "KILLED"):
        return None
    step = _stop_step(record)
    where = "before any metric was logged" if step is None else f"at step {_fmt_step(step)}"
    error = record.get("error")
    if error is None:
        return f"stopped {where}"
    message = error["message"].strip().splitlines()[0] if error["message"].strip() else ""
    cause = f"{error['type']}: {message}" if message else error["type"]
    return f"stopped {where}: {cause}"


def _sync_line(record: Mapping[str, Any]) -> str | None:
    sync = record["sync"]
    if sync["state"] == "synced":
        return None
    pending = sync["pending_points"]
    if sync["state"] == "offline":
        return f"offline: {pending} points wait in the local spool for the tracking server"
    return f"{pending} points still on their way to MLflow"


# --------------------------------------------------------------------------------------------
# text/plain


_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def render_text(record: Mapping[str, Any]) -> str:
    """A few lines for terminals: status, name, duration, last and best value of each metric."""
    run = record["run"]
    where = [f"experiment {run['experiment_name']}"] if run.get("experiment_name") else []
    if run.get("id"):
        where.append(f"run {run['id'][:8]}")
    lines = [f"nbtrack run {run['name']!r}: {_headline(record)}"
             + (f"  ({', '.join(where)})" if where else "")]  # fmt: skip
    for extra in (_stop_line(record), _sync_line(record)):
        if extra:
            lines.append(f"  {extra}")
    metrics = record["metrics"]
    width = min(32, max((len(name) for name in metrics), default=0))
    shown = list(metrics.items())[:_MAX_TABLE_ROWS]
    for name, m in shown:
        text = (
            f"  {name[:width]:<{width}}  last {_fmt_value(m['last'])} @ {_fmt_step(m['last_step'])}"
        )
        if m["best"] is not None:
            text += f"   best {_fmt_value(m['best'])} @ {_fmt_step(m['best_step'])}"
        if m["nonfinite"]:
            text += f"   ({m['nonfinite']} NaN/inf)"
        lines.append(text)
    if len(metrics) > len(shown):
        lines.append(f"  ... and {len(metrics) - len(shown)} more metrics")
    # Terminals interpret control characters: a run name must not be able to send escapes.
    return _CONTROL.sub("?", "\n".join(lines))


# --------------------------------------------------------------------------------------------
# text/html
#
# Written for the strictest viewer: JupyterLab sanitizes untrusted HTML output, removing <style>,
# <script>, <svg> and any CSS property outside its allow-list. So every style is inline and uses
# plain properties, and the chart is an <img> whose source is the SVG as a data: URI (the
# sanitizer keeps those). nbconvert, GitHub and VS Code show the same markup.

_ALARM = "#cf222e"
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


# Control characters (other than tab and newlines) are invalid in XML and meaningless in HTML.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff\ud800-\udfff]")


def _e(text: object) -> str:
    """Text made safe for HTML and SVG: escaped, and stripped of characters XML forbids."""
    return html.escape(_UNPRINTABLE.sub("\ufffd", str(text)), quote=True)


def _svg_data_uri(svg: str) -> str:
    # Percent-encoding only what a URI or the attribute needs keeps the data ~5% larger than
    # the SVG itself (base64 would add a third).
    return "data:image/svg+xml," + quote(svg, safe="/:=,.;()-_!*'@$+?~&")


def render_html(record: Mapping[str, Any], svg: str | None = None) -> str:
    """A self-contained HTML summary of a (valid) record: status, run, chart, metrics, params.

    ``svg`` is the chart from ``render_chart(record)``, embedded as an image; None leaves the
    chart out.
    """
    run = record["run"]
    fg, bg = _STATUS_COLORS.get(run["status"], ("#59636e", "#eaeef2"))
    badge = (
        f'<span style="display:inline-block;padding:0 7px;border-radius:10px;font-size:11px;'
        f'font-weight:600;color:{fg};background:{bg}">{_e(run["status"])}</span>'
    )
    facts = [_e(_headline(record).split(" ", 1)[1])]
    if run.get("experiment_name"):
        facts.append(f"experiment {_e(run['experiment_name'])}")
    facts.append(f"started {_e(_fmt_time(run['start_time']))}")
    link = ""
    if record.get("ui_url"):
        label = f"MLflow run {run['id'][:8]}" if run.get("id") else "MLflow"
        link = (
            f' · <a href="{_e(record["ui_url"])}" target="_blank" style="color:#0969da">'
            f"{_e(label)}</a>"
        )
    parts = [
        f'<div style="{_CARD}">',
        f"<div>{badge} <strong>{_e(run['name'])}</strong> "
        f'<span style="{_MUTED}">· {" · ".join(facts)}</span>{link}</div>',
    ]
    stop = _stop_line(record)
    if stop:
        parts.append(
            f'<div style="margin:6px 0;padding:4px 8px;border-radius:4px;color:{fg};'
            f'background:{bg}">{_e(stop)}</div>'
        )
    sync = _sync_line(record)
    if sync:
        parts.append(f'<div style="{_MUTED};margin:4px 0">{_e(sync)}</div>')
    if svg is not None:
        width, height = _svg_size(svg)
        parts.append(
            # Inside a double-quoted attribute only & needs escaping (the URI has no " < >);
            # escaping the SVG's many ' as well would add a quarter to the size.
            f'<img src="{html.escape(_svg_data_uri(svg), quote=False)}" '
            f'width="{width}" height="{height}" '
            f'alt="{_e("metrics of run " + str(run["name"]))}" '
            'style="display:block;max-width:100%;height:auto;margin:8px 0 2px 0">'
        )
    parts.append(_metrics_table(record))
    parts.append(_params_table(record))
    parts.append(_footer(record))
    parts.append("</div>")
    return "\n".join(p for p in parts if p)


def _svg_size(svg: str) -> tuple[int, int]:
    match = re.search(r"width='(\d+)' height='(\d+)'", svg)
    return (int(match[1]), int(match[2])) if match else (_CHART_WIDTH, 200)


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
    for i, (name, m) in enumerate(list(metrics.items())[:_MAX_TABLE_ROWS]):
        swatch = (
            f'<span style="display:inline-block;width:10px;height:3px;margin:0 6px 3px 0;'
            f'vertical-align:middle;background:{series_color(i)}"></span>'
        )
        best = _MISSING
        if m["best"] is not None:
            arrow = "↓" if m["goal"] == "min" else "↑"
            best = f"{_e(_fmt_value(m['best']))} {arrow} @{_e(_fmt_step(m['best_step']))}"
        points = f"{m['count']:,}"
        if m["nonfinite"]:
            points += f' <span style="color:{_ALARM}">({m["nonfinite"]:,} NaN/inf)</span>'
        numbers = (
            f"{_e(_fmt_value(m['last']))} @{_e(_fmt_step(m['last_step']))}",
            best,
            _e(_fmt_value(m["min"])),
            _e(_fmt_value(m["max"])),
            points,
        )
        rows.append(
            f'<tr style="{_ROW}"><td style="{_LEFT}">{swatch}{_e(name)}</td>'
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
    items = list(params.items())[:_MAX_TABLE_ROWS]
    rows = [
        f'<tr style="{_ROW};font-family:monospace"><td style="{_LEFT}">{_e(k)}</td>'
        f'<td style="{_LEFT};word-break:break-all">{_e(v)}</td></tr>'
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
    return f'<div style="{_MUTED};font-size:11px;margin-top:6px">{_e(" · ".join(bits))}</div>'


# --------------------------------------------------------------------------------------------
# image/svg+xml: small multiples, one panel per group of comparable metrics.

_CHART_WIDTH = 640
_MAX_PANELS = 8
_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
            "#17becf", "#7f7f7f", "#bcbd22")  # fmt: skip
_PAD_LEFT, _PAD_RIGHT, _PAD_TOP, _PAD_BOTTOM = 46, 12, 4, 20
_LEGEND_ROW = 15
_CHART_CLIP = 1e300
_CHAR_WIDTH = 6.2  # average advance of an 11px sans-serif glyph, for legend layout


def series_color(index: int) -> str:
    """Colour of the index-th metric, shared with the live plot so that colours stay put when
    the record replaces the plot."""
    return _PALETTE[index % len(_PALETTE)]


@dataclass(frozen=True)
class _Line:
    name: str
    color: str
    steps: Sequence[float]
    values: Sequence[float]
    nonfinite: int


def render_chart(record: Mapping[str, Any]) -> str | None:
    """The record's curves as an SVG image, or None when it has no metric.

    Metrics are grouped into panels (``group_metrics``), each with its own axes, tick labels and
    legend; a panel whose values are positive and span two decades or more uses a log scale.
    NaN and +inf are marked by red-edged triangles on the top edge, -inf on the bottom edge.
    """
    metrics: Mapping[str, Any] = record["metrics"]
    if not metrics:
        return None
    lines: dict[str, _Line] = {}
    ranges: dict[str, tuple[float, float]] = {}
    for i, (name, m) in enumerate(metrics.items()):
        values = [_from_json_number(v) for v in m["curve"]["values"]]
        lines[name] = _Line(name, series_color(i), m["curve"]["steps"], values, m["nonfinite"])
        if m["min"] is not None and m["max"] is not None:
            ranges[name] = (_from_json_number(m["min"]), _from_json_number(m["max"]))
    panels = group_metrics(metrics, ranges)
    hidden = sum(len(p) for p in panels[_MAX_PANELS:])
    panels = panels[:_MAX_PANELS]
    cols = 1 if len(panels) == 1 else 2
    panel_width = _CHART_WIDTH // cols
    plot_height = 150 if cols == 1 else 110

    body: list[str] = []
    y = 0.0
    for row_start in range(0, len(panels), cols):
        row = panels[row_start : row_start + cols]
        legends = [_legend_layout([lines[n] for n in p], panel_width) for p in row]
        legend_height = max(rows for _, rows in legends) * _LEGEND_ROW
        for col, (names, (legend, _)) in enumerate(zip(row, legends, strict=True)):
            x = col * panel_width
            panel = [lines[n] for n in names]
            body.extend(
                _svg_panel(x, y, panel, legend, size=(panel_width, legend_height, plot_height))
            )
        y += _PAD_TOP + legend_height + plot_height + _PAD_BOTTOM + 8
    if hidden:
        body.append(
            f"<text x='4' y='{y + 4:.0f}' fill='#59636e'>{hidden} more metrics are in the "
            "table and in MLflow</text>"
        )
        y += 14
    height = math.ceil(y)
    title = f"metrics of nbtrack run {record['run']['name']}"
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{_CHART_WIDTH}' height='{height}' "
        f"viewBox='0 0 {_CHART_WIDTH} {height}' font-family='Helvetica,Arial,sans-serif' "
        f"font-size='11' role='img' aria-label='{_e(title)}'>"
        f"<title>{_e(title)}</title><rect width='100%' height='100%' fill='#ffffff'/>"
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
) -> list[str]:
    """One panel at (x0, y0); size is (width, legend height, plot height)."""
    width, legend_height, plot_height = size
    left = x0 + _PAD_LEFT
    right = x0 + width - _PAD_RIGHT
    top = y0 + _PAD_TOP + legend_height
    bottom = top + plot_height
    out: list[str] = []
    for dx, row, line, label in legend:
        text_color = _ALARM if line.nonfinite else "#1f2328"
        lx, ly = left + dx, y0 + _PAD_TOP + row * _LEGEND_ROW + 10
        out.append(
            f"<path d='M{lx:.1f},{ly - 4:.1f}h14' stroke='{line.color}' stroke-width='2.5'/>"
            f"<text x='{lx + 18:.1f}' y='{ly:.1f}' fill='{text_color}'>{_e(label)}</text>"
        )

    steps = [s for line in lines for s in line.steps]
    # Clipped so that differences of extreme values (a diverging 1e308) stay finite.
    finite = [
        min(max(v, -_CHART_CLIP), _CHART_CLIP)
        for line in lines
        for v in line.values
        if math.isfinite(v)
    ]
    x_lo, x_hi = (min(steps), max(steps)) if steps else (0.0, 1.0)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    y_scale = _YScale.fit(finite)

    def px(step: float) -> float:
        return left + (step - x_lo) / (x_hi - x_lo) * (right - left)

    def py(value: float) -> float:
        return bottom - y_scale.fraction(value) * plot_height

    # Frame, horizontal grid and y labels.
    for fraction, label in y_scale.ticks():
        ty = bottom - fraction * plot_height
        out.append(
            f"<path d='M{left:.1f},{ty:.1f}H{right:.1f}' stroke='#eaeef2'/>"
            f"<text x='{left - 4:.1f}' y='{ty + 3.5:.1f}' text-anchor='end' fill='#59636e'>"
            f"{_e(label)}</text>"
        )
    if y_scale.log:
        out.append(
            f"<text x='{x0 + 2:.1f}' y='{top - 2:.1f}' fill='#59636e' font-size='9'>log</text>"
        )
    step_tick = _nice_step(x_hi - x_lo, 6 if width > 400 else 4)
    first_tick = math.ceil(x_lo / step_tick) * step_tick
    # Counted, not accumulated: at 1e17 adding a small step would never move the tick.
    n_ticks = min(12, max(0, math.floor((x_hi - first_tick) / step_tick + 1e-9) + 1))
    for i in range(n_ticks):
        tick = first_tick + i * step_tick
        tx = px(tick)
        out.append(
            f"<path d='M{tx:.1f},{bottom:.1f}v3' stroke='#8c959f'/>"
            f"<text x='{tx:.1f}' y='{bottom + 14:.1f}' text-anchor='middle' fill='#59636e'>"
            f"{_e(_fmt_step_tick(tick))}</text>"
        )
    out.append(
        f"<rect x='{left:.1f}' y='{top:.1f}' width='{right - left:.1f}' "
        f"height='{plot_height}' fill='none' stroke='#d0d7de'/>"
    )

    # Curves: at most one point per pixel column pair is visible, so thin them once more.
    budget = max(4, int(right - left))
    for line in lines:
        steps_arr, values_arr = decimate(line.steps, line.values, budget)
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
        out.append(f"<path d='M{x:.1f},{tip:.1f}l4,{dy}h-8z' fill='{color}' stroke='{_ALARM}'/>")
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
                ticks.append((fraction, _fmt_value(10.0**position)))
            else:
                value = round(position / self.step) * self.step
                ticks.append((fraction, _fmt_tick(value, self.step)))
        return ticks


def _fmt_tick(value: float, step: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or step < 1e-4:
        return _fmt_value(value)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if step * 10**decimals % 1 > 1e-6:  # a 2.5-step needs one more digit
        decimals += 1
    return f"{value:.{decimals}f}"
