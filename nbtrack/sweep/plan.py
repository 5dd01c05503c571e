"""What a sweep was asked to do, checked once: ``%%track --sweep`` and its options."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from nbtrack._redact import strip_uri_credentials
from nbtrack.record.metrics import metric_goal
from nbtrack.sweep.space import Dimension, parse_dimension

__all__ = ["PRUNERS", "SAMPLERS", "SweepPlan", "make_plan"]

SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("median", "halving", "hyperband")


@dataclass(frozen=True)
class SweepPlan:
    """A sweep's search space and how it is searched (validated; see ``make_plan``)."""

    dimensions: tuple[Dimension, ...]
    sampler: str
    trials: int  # in all, for the study (several kernels share it with --study/--storage)
    metric: str | None  # None: the first metric with a known goal that the first trial logs
    goal: str | None  # "min" or "max"; None only while the metric is not known yet
    objective: str = "last"  # a trial's value: the metric's last logged value, or its best
    pruner: str | None = None
    stop_on_error: bool = False
    study: str | None = None
    storage: str | None = None  # may hold a password: never logged, shown or written
    seed: int | None = None

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    def settings(self) -> dict[str, str]:
        """The sweep as the parent run's params (no credentials)."""
        params = {f"sweep.{d.name}": d.text for d in self.dimensions}
        params.update(
            {
                "sweep.sampler": self.sampler,
                "sweep.trials": str(self.trials),
                "sweep.objective": self.objective,
            }
        )
        if self.metric:
            params["sweep.metric"] = self.metric
            params["sweep.goal"] = str(self.goal)
        if self.pruner:
            params["sweep.pruner"] = self.pruner
        if self.storage:
            params["sweep.storage"] = strip_uri_credentials(self.storage)
        return params


def make_plan(
    specs: Sequence[str],
    *,
    trials: int | None = None,
    sampler: str | None = None,
    metric: str | None = None,
    goal: str | None = None,
    objective: str = "last",
    pruner: str | None = None,
    stop_on_error: bool = False,
    study: str | None = None,
    storage: str | None = None,
    seed: int | None = None,
) -> SweepPlan:
    """A checked plan; ``ValueError`` naming the bad option and the fix."""
    dimensions = tuple(parse_dimension(spec) for spec in specs)
    names = [d.name for d in dimensions]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        msg = f"--sweep names {twice[0]!r} twice; give each name one spec"
        raise ValueError(msg)
    all_lists = all(d.is_list for d in dimensions)
    sampler = sampler or ("grid" if all_lists else "tpe")
    if sampler not in SAMPLERS:
        msg = f"--sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}"
        raise ValueError(msg)
    if sampler == "grid" and not all_lists:
        ranges = ", ".join(d.name for d in dimensions if not d.is_list)
        msg = (
            f"--sampler grid tries lists of values, but {ranges} is a range: give it a list, "
            "or search with --sampler tpe (or random) and --trials N"
        )
        raise ValueError(msg)
    if trials is not None and trials < 1:
        msg = f"--trials must be at least 1, got {trials}"
        raise ValueError(msg)
    if sampler == "grid":
        size = math.prod(len(d.values) for d in dimensions)
        trials = size if trials is None else min(trials, size)
    elif trials is None:
        msg = f"--sampler {sampler} needs --trials N: how many trials to run"
        raise ValueError(msg)
    if metric is None and (sampler != "grid" or pruner):
        why = "--prune" if pruner else f"--sampler {sampler}"
        msg = f"{why} needs --sweep-metric NAME: the metric it optimises (e.g. val/loss)"
        raise ValueError(msg)
    if metric is not None:
        goal = goal or metric_goal(metric)
        if goal is None:
            msg = (
                f"--sweep-metric {metric!r}: nbtrack cannot tell whether lower or higher is "
                "better; add --goal min or --goal max"
            )
            raise ValueError(msg)
    if storage and not study:
        msg = "--storage needs --study NAME: the study the kernels sharing the storage join"
        raise ValueError(msg)
    return SweepPlan(
        dimensions,
        sampler,
        trials,
        metric,
        goal,
        objective,
        pruner,
        stop_on_error,
        study,
        storage,
        seed,
    )
