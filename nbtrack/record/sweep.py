"""A sweep's record: the trials section of its parent run's record, and its renderings.

The parent run of a sweep (``%%track --sweep``) keeps, besides its own record, its trials:
each one's params, state (RUNNING, COMPLETE, PRUNED, FAILED, KILLED), value of the sweep's
metric and curve of it, ranked by that value (the best first). This module builds that section
within the record's size budget and draws it for the HTML card, the SVG chart and the text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from nbtrack.record.format import MISSING, escape, fmt_value
from nbtrack.record.metrics import series_color

__all__ = [
    "TRIAL_STATES",
    "best_params_code",
    "ranked",
    "sweep_json",
    "trial_series",
    "trials_html",
    "trials_text",
]

TRIAL_STATES = ("RUNNING", "COMPLETE", "PRUNED", "FAILED", "KILLED")
# Budget: a row costs ~150 bytes in the .ipynb, a curve point ~35 (no times).
_MAX_TRIALS = 100
_MAX_CURVES = 30
_CURVE_POINTS_TOTAL = 1200
_CURVE_POINTS_MAX = 100
_CURVE_POINTS_MIN = 12
_MAX_PARAM_CHARS = 200
# Trials drawn in the chart, and listed in the text and HTML tables.
_MAX_DRAWN = 20
_MAX_ROWS = 25
_ORDER = {"COMPLETE": 0, "PRUNED": 1, "RUNNING": 2, "FAILED": 3, "KILLED": 4}


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def ranked(trials: Sequence[Mapping[str, Any]], goal: str | None) -> list[Mapping[str, Any]]:
    """Trials best first: completed ones by value (``goal`` min or max), then pruned ones,
    then running, failed and killed ones; each group in trial order where values tie."""
    sign = -1.0 if goal == "max" else 1.0

    def key(trial: Mapping[str, Any]) -> tuple[int, int, float, int]:
        value = _number(trial.get("value"))
        group = _ORDER.get(str(trial.get("state")), 5)
        return (
            group,
            value is None,
            sign * value if value is not None else 0.0,
            int(trial.get("number") or 0),
        )

    return sorted(trials, key=key)


def sweep_json(sweep: Mapping[str, Any]) -> dict[str, Any]:
    """The record's ``sweep`` section from what the kernel knows of a sweep (see
    ``RecordSource.sweep``): trials ranked, the best named, within the size budget."""
    from nbtrack._decimate import kept_indices  # numpy: only where records are built

    goal = sweep.get("goal")
    trials = ranked(list(sweep.get("trials") or ()), goal)
    best = next(
        (t for t in trials if t.get("state") == "COMPLETE" and _number(t.get("value")) is not None),
        None,
    )
    kept = trials[:_MAX_TRIALS]
    with_curve = [t for t in kept if t.get("steps")][:_MAX_CURVES]
    per_curve = max(
        _CURVE_POINTS_MIN, min(_CURVE_POINTS_MAX, _CURVE_POINTS_TOTAL // max(1, len(with_curve)))
    )
    rows = []
    for trial in kept:
        value = _number(trial.get("value"))
        row: dict[str, Any] = {
            "number": int(trial["number"]),
            "name": str(trial.get("name") or f"trial {trial['number']}"),
            "run_id": trial.get("run_id"),
            "state": trial.get("state") if trial.get("state") in TRIAL_STATES else "FAILED",
            "value": None if value is None else float(f"{value:.7g}"),
            "params": {
                str(k): str(v)[:_MAX_PARAM_CHARS]
                for k, v in dict(trial.get("params") or {}).items()
            },
        }
        if trial.get("step") is not None:
            row["step"] = int(trial["step"])
        if any(trial is t for t in with_curve):
            import numpy as np

            values = np.asarray(trial["values"], dtype=float)
            keep = kept_indices(values, per_curve)
            steps = np.asarray(trial["steps"], dtype=float)[keep].tolist()
            row["curve"] = {
                "steps": [int(s) if float(s).is_integer() else s for s in steps],
                "values": [_curve_value(v) for v in values[keep].tolist()],
            }
        rows.append(row)
    return {
        "study": str(sweep.get("study") or ""),
        "sampler": str(sweep.get("sampler") or ""),
        "metric": sweep.get("metric"),
        "goal": goal if goal in ("min", "max") else None,
        "objective": "best" if sweep.get("objective") == "best" else "last",
        "trials_total": sweep.get("trials_total"),
        "best": None if best is None else int(best["number"]),
        "trials": rows,
        "trials_omitted": len(trials) - len(kept),
    }


def _curve_value(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return float(f"{value:.5g}")


def best_params_code(section: Mapping[str, Any]) -> tuple[str, str] | None:
    """The best trial's params ready to paste: as the cell's assignments, and as a dict; None
    while no trial completed. Param texts are Python literals (``repr``)."""
    best = _best(section)
    if best is None or not best["params"]:
        return None
    params = best["params"]
    lines = "\n".join(f"{name} = {text}" for name, text in params.items())
    mapping = "{" + ", ".join(f"{name!r}: {text}" for name, text in params.items()) + "}"
    return lines, mapping


def _best(section: Mapping[str, Any]) -> Mapping[str, Any] | None:
    number = section.get("best")
    return next((t for t in section.get("trials") or () if t.get("number") == number), None)


def _metric_label(section: Mapping[str, Any]) -> str:
    metric = section.get("metric")
    if not metric:
        return "value"
    arrow = {"min": " ↓", "max": " ↑"}.get(str(section.get("goal")), "")
    return f"{metric} ({section.get('objective', 'last')}){arrow}"


def trial_series(record: Mapping[str, Any]) -> list[tuple[str, str, list[float], list[float]]]:
    """The trials' curves of the sweep metric for the chart, best first: (label, colour,
    steps, values); the best trial's label says so."""
    section = record.get("sweep")
    if not isinstance(section, Mapping):
        return []
    from nbtrack.record.format import from_json_number

    series = []
    for trial in section.get("trials") or ():
        curve = trial.get("curve")
        if not isinstance(curve, Mapping) or not curve.get("steps"):
            continue
        number = int(trial["number"])
        label = f"#{number}"
        if number == section.get("best"):
            label = f"{section.get('metric') or 'value'} #{number} (best)"
        elif trial.get("state") == "PRUNED":
            label += " pruned"
        series.append(
            (
                label,
                series_color(number),
                list(curve["steps"]),
                [from_json_number(v) for v in curve["values"]],
            )
        )
        if len(series) == _MAX_DRAWN:
            break
    return series


_TD = "text-align:left;padding:2px 10px 2px 0;vertical-align:top"
_TH = "border-bottom:1px solid #d0d7de;color:#59636e;font-weight:600;background:#ffffff;" + _TD
_ROW = "border-bottom:1px solid #eaeef2;background:#ffffff"
_PRE = "font-family:monospace;background:#f6f8fa;padding:4px 6px;margin:2px 0;white-space:pre"


def trials_html(record: Mapping[str, Any]) -> str:
    """The trials table (ranked, the best marked) and the best params ready to copy."""
    section = record.get("sweep")
    if not isinstance(section, Mapping):
        return ""
    trials = list(section.get("trials") or ())
    names = list(dict.fromkeys(name for t in trials for name in t["params"]))
    head = ["trial", "state", escape(_metric_label(section)), *map(escape, names)]
    rows = []
    for trial in trials[:_MAX_ROWS]:
        best = trial["number"] == section.get("best")
        style = _ROW + (";font-weight:600;background:#dafbe1" if best else "")
        cells = [
            f"#{trial['number']}" + (" ★ best" if best else ""),
            trial["state"],
            fmt_value(trial.get("value")) if trial.get("value") is not None else MISSING,
            *(trial["params"].get(name, MISSING) for name in names),
        ]
        rows.append(
            f'<tr style="{style}">'
            + "".join(f'<td style="{_TD}">{escape(c)}</td>' for c in cells)
            + "</tr>"
        )
    more = len(trials) - len(rows) + int(section.get("trials_omitted") or 0)
    if more:
        rows.append(
            f'<tr style="{_ROW};color:#59636e"><td style="{_TD}" colspan="{len(head)}">'
            f"… and {more} more trials in MLflow</td></tr>"
        )
    parts = [
        f'<div style="margin-top:8px"><strong>Sweep</strong> <span style="color:#59636e">· '
        f"{escape(_summary(section))}</span></div>",
        '<table style="border-collapse:collapse;border:none;margin:4px 0;font-size:12px;'
        'color:#1f2328"><thead><tr>'
        + "".join(f'<th style="{_TH}">{h}</th>' for h in head)
        + f"</tr></thead><tbody>{''.join(rows)}</tbody></table>",
    ]
    code = best_params_code(section)
    if code is not None:
        parts.append(
            f'<div style="margin-top:4px">Best params (trial #{section["best"]}), to paste into '
            f'the cell or as a dict:</div><div style="{_PRE}">{escape(code[0])}</div>'
            f'<div style="{_PRE}">{escape(code[1])}</div>'
        )
    return "\n".join(parts)


def _summary(section: Mapping[str, Any]) -> str:
    trials = section.get("trials") or ()
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial["state"]] = counts.get(trial["state"], 0) + 1
    done = ", ".join(f"{n} {state.lower()}" for state, n in counts.items())
    total = section.get("trials_total")
    planned = f" of {total}" if isinstance(total, int) else ""
    return (
        f"{section.get('sampler')} search, {len(trials)}{planned} trials ({done}); study "
        f"{section.get('study')}"
    )


def trials_text(record: Mapping[str, Any]) -> list[str]:
    """A few lines: the ranked trials and the best params."""
    section = record.get("sweep")
    if not isinstance(section, Mapping):
        return []
    lines = [f"  sweep: {_summary(section)}; ranked by {_metric_label(section)}"]
    trials = list(section.get("trials") or ())
    for trial in trials[:_MAX_ROWS]:
        value = fmt_value(trial.get("value")) if trial.get("value") is not None else MISSING
        params = ", ".join(f"{k}={v}" for k, v in trial["params"].items())
        mark = "  <- best" if trial["number"] == section.get("best") else ""
        lines.append(f"    #{trial['number']:<4} {trial['state']:<8} {value:>10}  {params}{mark}")
    if len(trials) > _MAX_ROWS:
        lines.append(f"    ... and {len(trials) - _MAX_ROWS} more trials")
    code = best_params_code(section)
    if code is not None:
        lines.append(f"  best params: {code[1]}")
    return lines
