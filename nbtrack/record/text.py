"""``text/plain``: a record as a few lines for terminals and ``nbtrack show``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from nbtrack.record.format import (
    MAX_TABLE_ROWS,
    fmt_step,
    fmt_value,
    headline,
    stop_line,
    sync_line,
)
from nbtrack.record.sweep import trials_text

__all__ = ["render_text"]

_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def render_text(record: Mapping[str, Any]) -> str:
    """A few lines for terminals: status, name, duration, last and best value of each metric."""
    run = record["run"]
    where = [f"experiment {run['experiment_name']}"] if run.get("experiment_name") else []
    if run.get("id"):
        where.append(f"run {run['id'][:8]}")
    lines = [f"nbtrack run {run['name']!r}: {headline(record)}"
             + (f"  ({', '.join(where)})" if where else "")]  # fmt: skip
    for extra in (stop_line(record), sync_line(record)):
        if extra:
            lines.append(f"  {extra}")
    lines.extend(trials_text(record))
    metrics = record["metrics"]
    width = min(32, max((len(name) for name in metrics), default=0))
    shown = list(metrics.items())[:MAX_TABLE_ROWS]
    for name, m in shown:
        text = (
            f"  {name[:width]:<{width}}  last {fmt_value(m['last'])} @ {fmt_step(m['last_step'])}"
        )
        if m["best"] is not None:
            text += f"   best {fmt_value(m['best'])} @ {fmt_step(m['best_step'])}"
        if m["nonfinite"]:
            text += f"   ({m['nonfinite']} NaN/inf)"
        lines.append(text)
    if len(metrics) > len(shown):
        lines.append(f"  ... and {len(metrics) - len(shown)} more metrics")
    # Terminals interpret control characters: a run name must not be able to send escapes.
    return _CONTROL.sub("?", "\n".join(lines))
