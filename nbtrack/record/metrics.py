"""Metric names: what a metric is for, which metrics share a chart panel, and their colours.

Everything here is decided from names (and, for panels, value ranges) only, so the live plot
and the record draw the same picture.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeGuard

if TYPE_CHECKING:
    from nbtrack._curves import Curve

__all__ = [
    "ALARM_COLOR",
    "BEST_TAG",
    "Goal",
    "best_values_tag",
    "group_metrics",
    "metric_goal",
    "panels_for",
    "series_color",
]

Goal = Literal["min", "max"]

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

_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
            "#17becf", "#7f7f7f", "#bcbd22")  # fmt: skip
# The colour of NaN/inf marks and failures, in the chart and in the HTML card alike.
ALARM_COLOR = "#cf222e"


def _words(name: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(name)]


# Names repeat at every redraw of a live view, which may list thousands of metrics.
@functools.lru_cache(maxsize=16384)
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


@functools.lru_cache(maxsize=16384)
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


def panels_for(metrics: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    """The chart panels a record carries: ``group_metrics`` of its metric entries.

    ``metrics`` maps each name to its entry in the record (docs/record-schema.md), whose finite
    ``min`` and ``max`` separate curves of very different scale. Every reader draws these
    panels as they are, so this is the one place where metrics are grouped for a record: the
    kernel's records and the runs API's both come from here.
    """
    ranges = {}
    for name, entry in metrics.items():
        low, high = entry.get("min"), entry.get("max")
        if _finite(low) and _finite(high):
            ranges[name] = (float(low), float(high))
    return group_metrics(metrics, ranges)


def _finite(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


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


def series_color(index: int) -> str:
    """Colour of the index-th metric, shared with the live plot so that colours stay put when
    the record replaces the plot."""
    return _PALETTE[index % len(_PALETTE)]


# The best value of each metric with a goal, stored with the run when its cell ends, so that
# nbtrack.runs() lists best values from one search of the store (MLflow keeps only the last).
BEST_TAG = "nbtrack.best"
_BEST_TAG_CHARS = 5000  # MLflow's limit for a tag value


def best_values_tag(curves: Mapping[str, Curve]) -> str | None:
    """``{"metric": [best, step], ...}`` as JSON for the metrics whose goal is known, in
    logging order, as many as fit in a tag (5000 characters); None when there is none."""
    parts: list[str] = []
    size = 2
    for name, curve in curves.items():
        goal = metric_goal(name)
        if goal is None or curve.count <= curve.nonfinite:
            continue
        value, step = (curve.min, curve.min_step) if goal == "min" else (curve.max, curve.max_step)
        part = json.dumps({name: [value, int(step) if step.is_integer() else step]})[1:-1]
        if size + len(part) + 1 > _BEST_TAG_CHARS:
            break
        parts.append(part)
        size += len(part) + 1
    return "{" + ",".join(parts) + "}" if parts else None
