"""The curves of runs being compared, from their records or from the tracking store, and the
panels they share.

Each run brings its metrics' points (step, value, seconds since it started) and its own chart
panels with their x axes, decided by the same functions as its record's
(``nbtrack.record.metrics.group_metrics``, ``nbtrack.record.axes.aligned_axis``). Panels of
different runs that share a metric are merged into one, so that every run's ``val/loss`` lands
on the same chart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nbtrack.record.axes import Axis, aligned_axis
from nbtrack.record.format import from_json_number
from nbtrack.record.metrics import group_metrics
from nbtrack.record.schema import record_layout

__all__ = ["RunCurves", "Series", "curves_from_record", "curves_from_store", "merge_layouts"]

# Points per curve fetched from a store: plenty for a chart, and plotly stays quick.
MAX_POINTS = 2000


@dataclass
class Series:
    """One metric of one run: points in step order; ``times`` in seconds since the run
    started, None when unknown (records written before schema 3)."""

    steps: list[float]
    values: list[float]
    times: list[float] | None


@dataclass
class RunCurves:
    """What a comparison draws of one run."""

    label: str
    start_ms: int | None
    series: dict[str, Series] = field(default_factory=dict)
    # The run's own panels, in order, with the x axis each lines up on.
    layout: list[tuple[list[str], Axis]] = field(default_factory=list)


def curves_from_record(record: Mapping[str, Any], label: str) -> RunCurves:
    """A run's curves as its record carries them (decimated; metrics without a curve in the
    record are left out)."""
    run = RunCurves(label=label, start_ms=record["run"].get("start_time"))
    for name, entry in record["metrics"].items():
        curve = entry.get("curve")
        if not isinstance(curve, Mapping) or not curve.get("steps"):
            continue
        times = curve.get("times")
        run.series[name] = Series(
            steps=[float(s) for s in curve["steps"]],
            values=[from_json_number(v) for v in curve["values"]],
            times=[float(t) for t in times] if isinstance(times, list) else None,
        )
    run.layout = [
        (kept, _axis(axis))
        for panel, axis in record_layout(record)
        if (kept := [name for name in panel if name in run.series])
    ]
    return run


def curves_from_store(
    client: Any, run: Any, label: str, metrics: Sequence[str] | None = None
) -> RunCurves:
    """A run's curves read from its store: one ``get_metric_history`` per metric, each curve
    min/max decimated to ``MAX_POINTS``."""
    from nbtrack._decimate import kept_indices

    start = run.info.start_time
    out = RunCurves(label=label, start_ms=start)
    names = [n for n in run.data.metrics if metrics is None or n in metrics]
    ranges: dict[str, tuple[float, float]] = {}
    for name in names:
        history = sorted(
            client.get_metric_history(run.info.run_id, name), key=lambda m: (m.step, m.timestamp)
        )
        if not history:
            continue
        values = [float(m.value) for m in history]
        keep = kept_indices(values, MAX_POINTS).tolist()
        out.series[name] = Series(
            steps=[float(history[i].step) for i in keep],
            values=[values[i] for i in keep],
            times=[(history[i].timestamp - start) / 1000 for i in keep] if start else None,
        )
        finite = [v for v in values if math.isfinite(v)]
        if finite:
            ranges[name] = (min(finite), max(finite))
    panels = group_metrics(list(out.series), ranges)
    out.layout = [(panel, _panel_axis(out, panel)) for panel in panels]
    return out


def _panel_axis(run: RunCurves, panel: Iterable[str]) -> Axis:
    return aligned_axis((run.series[n].steps, run.series[n].times) for n in panel)


def _axis(value: str) -> Axis:
    return "relative" if value == "relative" else "wall" if value == "wall" else "step"


def merge_layouts(runs: Sequence[RunCurves]) -> list[tuple[list[str], Axis]]:
    """The panels of several runs as one list: panels that share a metric are merged (also
    through a third panel), in the order they first appear, run by run. A merged panel is
    drawn against time if any run needs that to line its curves up."""
    merged: list[tuple[list[str], set[Axis]]] = []
    for run in runs:
        for panel, axis in run.layout:
            touched = [group for group in merged if any(name in group[0] for name in panel)]
            if touched:
                target = touched[0]
                for other in touched[1:]:
                    target[0].extend(n for n in other[0] if n not in target[0])
                    target[1].update(other[1])
                    merged.remove(other)
            else:
                target = ([], set())
                merged.append(target)
            target[0].extend(name for name in panel if name not in target[0])
            target[1].add(axis)
    return [(names, "relative" if "relative" in axes else "step") for names, axes in merged]
