"""Numbers, steps, durations, times and status sentences as the renderings write them.

Shared by the text, HTML and SVG renderings so that a value reads the same in each. Everything
here takes record fields (JSON values), not run objects.
"""

from __future__ import annotations

import html
import math
import re
import time
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MAX_TABLE_ROWS",
    "MISSING",
    "escape",
    "fmt_duration",
    "fmt_step",
    "fmt_time",
    "fmt_value",
    "from_json_number",
    "headline",
    "lost_line",
    "stop_line",
    "sync_line",
]

MISSING = "\N{EN DASH}"
# Metrics and params listed in the text and HTML summaries; the rest are counted.
MAX_TABLE_ROWS = 20

# Control characters (other than tab and newlines) are invalid in XML and meaningless in HTML.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff\ud800-\udfff]")


def escape(text: object) -> str:
    """Text made safe for HTML and SVG: escaped, and stripped of characters XML forbids."""
    return html.escape(_UNPRINTABLE.sub("\ufffd", str(text)), quote=True)


def from_json_number(value: object) -> float:
    """A metric value as the record writes it (a number, or "NaN"/"Infinity"/"-Infinity")."""
    if isinstance(value, str):
        return float({"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}.get(value, "nan"))
    if isinstance(value, int | float):
        return float(value)
    return math.nan


def fmt_value(value: object) -> str:
    if value is None:
        return MISSING
    number = from_json_number(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    text = f"{number:.4g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


def fmt_step(step: object) -> str:
    if isinstance(step, int | float) and not isinstance(step, bool):
        return f"{step:g}" if isinstance(step, float) else str(step)
    return "?"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "still running"
    # A record from anyone may hold any number (NaN, infinity once parsed): never raise on one.
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def fmt_time(epoch_ms: int) -> str:
    """The time as UTC, or "?" for one the platform's calendar cannot hold (a record from
    anyone may hold any number)."""
    try:
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch_ms / 1000))
    except (OverflowError, OSError, ValueError):
        return "?"


def _stop_step(record: Mapping[str, Any]) -> object:
    """Where a run stopped: the failing step if known, else the last step any metric reached."""
    error = record.get("error") or {}
    if error.get("step") is not None:
        return error["step"]
    steps = [m["last_step"] for m in record["metrics"].values() if m["last_step"] is not None]
    return max(steps) if steps else None


def headline(record: Mapping[str, Any]) -> str:
    """Status and how long: "FINISHED in 1 min 02 s", "RUNNING since ..."."""
    run = record["run"]
    status = run["status"]
    if status == "RUNNING":
        when = f"since {fmt_time(run['start_time'])}"
    elif status == "FINISHED":
        when = f"in {fmt_duration(run['duration_s'])}"
    else:
        when = f"after {fmt_duration(run['duration_s'])}"
    return f"{status} {when}"


def stop_line(record: Mapping[str, Any]) -> str | None:
    """Where and why a failed or interrupted run stopped; None for other runs."""
    if record["run"]["status"] not in ("FAILED", "KILLED"):
        return None
    step = _stop_step(record)
    where = "before any metric was logged" if step is None else f"at step {fmt_step(step)}"
    error = record.get("error")
    if error is None:
        # Failed for what it could not store, not for an error of its cell.
        return lost_line(record) or f"stopped {where}"
    message = error["message"].strip().splitlines()[0] if error["message"].strip() else ""
    cause = f"{error['type']}: {message}" if message else error["type"]
    return f"stopped {where}: {cause}"


def lost_line(record: Mapping[str, Any]) -> str | None:
    """What the run logged that could not be made durable and will never be stored."""
    sync = record["sync"]
    points, items = sync.get("lost_points", 0), sync.get("lost_items", 0)
    if not points and not items:
        return None
    what = [f"{points:,} points"] if points else []
    if items:
        what.append(f"{items:,} params/tags/artifacts")
    why = sync.get("lost_reason") or "write error"
    return f"{' and '.join(what)} not stored: nbtrack could not write its local journal ({why})"


def sync_line(record: Mapping[str, Any]) -> str | None:
    """What the tracking store does not have yet, and what it never will; None once it has
    everything."""
    sync = record["sync"]
    parts = []
    lost = lost_line(record)
    if lost and stop_line(record) != lost:
        parts.append(lost)
    # With every point stored, what is left is the run's end (its status and last tags).
    pending = sync["pending_points"]
    if sync["state"] == "offline":
        what = f"{pending:,} points wait" if pending else "the run's end waits"
        parts.append(f"offline: {what} in the local spool for the tracking server")
    elif sync["state"] == "syncing" and pending:
        parts.append(f"{pending:,} points are still on their way to MLflow")
    elif sync["state"] == "syncing":
        parts.append("the run's end is still on its way to MLflow")
    return "; ".join(parts) or None
