"""Which x axis a chart panel uses: the step, the time since the run started, or the wall clock.

A panel can mix metrics logged at different rates: ``train/loss`` every batch (steps 0-945) and
``val/loss`` once per epoch (``step=epoch``, steps 0-14). Drawn against the step, the validation
curve is squeezed against the left edge and looks finished before training started. Both were
logged over the same minutes, so against the time since the run started they line up. This
module decides, once per panel and in Python, which axis shows a panel truthfully; every chart
(the record's SVG and PNG, the lab extension, ``nbtrack.compare``) starts from that choice and
says which axis it draws.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

__all__ = ["AXES", "AXIS_TITLES", "Axis", "aligned_axis", "panel_axes", "time_unit"]

Axis = Literal["step", "relative", "wall"]
AXES: tuple[Axis, ...] = ("step", "relative", "wall")
AXIS_TITLES: dict[str, str] = {
    "step": "step",
    "relative": "time since start",
    "wall": "wall-clock time",
}

# A series whose position along the steps and along the time differ by more than this share of
# the panel's width is drawn misleadingly against the step.
_MISALIGNED = 0.25


def aligned_axis(series: Iterable[tuple[Sequence[float], Sequence[float] | None]]) -> Axis:
    """``"step"`` when the series of one run line up by step, else ``"relative"``.

    ``series`` holds each curve's ``(steps, times)``, times in seconds since the run started (or
    None when unknown). Series line up by step when each one ends about as far along the
    panel's steps as along its time: a metric logged per epoch with ``step=epoch`` ends at 1 %
    of the steps of a per-batch metric but at 100 % of the time, so that panel is drawn against
    time. Without times for every series the step is all there is.
    """
    ends: list[tuple[float, float, float, float]] = []  # first/last step, first/last time
    for steps, times in series:
        if not steps:
            continue
        if not times or len(times) != len(steps):
            return "step"
        ends.append((steps[0], steps[-1], times[0], times[-1]))
    if len(ends) < 2:
        return "step"
    step_lo = min(e[0] for e in ends)
    step_hi = max(e[1] for e in ends)
    time_lo = min(e[2] for e in ends)
    time_hi = max(e[3] for e in ends)
    if not (step_hi > step_lo and time_hi > time_lo):
        return "step"
    for _, last_step, _, last_time in ends:
        along_steps = (last_step - step_lo) / (step_hi - step_lo)
        along_time = (last_time - time_lo) / (time_hi - time_lo)
        if abs(along_steps - along_time) > _MISALIGNED:
            return "relative"
    return "step"


def panel_axes(panels: Sequence[Sequence[str]], metrics: Mapping[str, Any]) -> list[Axis]:
    """The x axis of each panel of a record, from its metrics' curves (see ``aligned_axis``)."""
    return [aligned_axis(_series(metrics.get(name)) for name in panel) for panel in panels]


def _series(entry: object) -> tuple[Sequence[float], Sequence[float] | None]:
    curve = entry.get("curve") if isinstance(entry, Mapping) else None
    if not isinstance(curve, Mapping):
        return (), None
    steps = [s for s in curve.get("steps") or () if _finite(s)]
    times = curve.get("times")
    if not isinstance(times, list) or not all(_finite(t) for t in times):
        times = None
    return steps, times


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def time_unit(span_s: float) -> tuple[float, str]:
    """(seconds per unit, unit) to label a time axis spanning ``span_s`` seconds: seconds up
    to two minutes, minutes up to two hours, hours beyond."""
    if span_s < 120:
        return 1.0, "s"
    if span_s < 7200:
        return 60.0, "min"
    return 3600.0, "h"
