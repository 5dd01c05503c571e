"""The Optuna study a sweep asks its trials from: in memory, or shared by several kernels
through an Optuna storage (``--study NAME --storage URL``, any RDB URL Optuna takes).

Grid sweeps put every combination in the study's queue when the study is created; each
kernel's ``ask`` then takes a distinct queued trial (Optuna takes a waiting trial atomically),
so kernels sharing a grid never run a combination twice. Ranges are sampled by TPE or at
random. Trial numbers are given by the storage, one per trial: a kernel runs a trial only if
its number is below the planned total, so several kernels run the planned number in all.

The parent run: the kernel that creates the study creates the parent run too and, once the
sync process gave it an id, stores that id in the study (user attribute
``nbtrack.parent_run_id``); the other kernels wait for it and nest their trials under it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from nbtrack._redact import redact_text, strip_uri_credentials
from nbtrack.sweep.plan import SweepPlan
from nbtrack.sweep.space import grid_points

__all__ = ["PARENT_ATTR", "import_optuna", "open_study", "quiet_optuna", "wait_for_parent"]

PARENT_ATTR = "nbtrack.parent_run_id"
EXPERIMENT_ATTR = "nbtrack.experiment_id"
_OPEN_TRIES = 4


def import_optuna() -> Any:
    """Optuna, or an ImportError that says how to install it."""
    try:
        import optuna
    except ImportError as error:
        msg = (
            "%%track --sweep searches with Optuna, which is not installed in this kernel's "
            "environment: pip install optuna (or pip install nbtrack, which requires it)"
        )
        raise ImportError(msg) from error
    return optuna


def _sampler(optuna: Any, plan: SweepPlan) -> Any:
    if plan.sampler == "tpe":
        # Optuna's default starts TPE after 10 random trials; a notebook sweep is often
        # shorter, so it starts after a quarter of them (3 to 10).
        startup = min(10, max(3, plan.trials // 4))
        return optuna.samplers.TPESampler(seed=plan.seed, n_startup_trials=startup)
    # Grid points come from the study's queue; a random sampler only serves surplus asks.
    return optuna.samplers.RandomSampler(seed=plan.seed)


def _pruner(optuna: Any, plan: SweepPlan) -> Any:
    if plan.pruner is None:
        return optuna.pruners.NopPruner()
    if plan.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if plan.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    # Notebook sweeps are short: compare with the median once 3 trials completed, from step 1.
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)


def open_study(plan: SweepPlan, name: str) -> tuple[Any, bool]:
    """The study ``plan.study`` (or ``name``), and whether this call created it. Raises
    ValueError for a storage that cannot be opened or a study that wants the other goal."""
    optuna = import_optuna()
    direction = "maximize" if plan.goal == "max" else "minimize"
    kwargs = {"sampler": _sampler(optuna, plan), "pruner": _pruner(optuna, plan)}
    study_name = plan.study or name
    for attempt in range(_OPEN_TRIES):
        try:
            study, created = _open(optuna, plan, study_name, direction, kwargs)
            break
        except (ImportError, ValueError):
            raise
        except Exception as error:  # noqa: BLE001 - any storage error: said in one line
            # Kernels opening a new storage at the same moment race to create its tables:
            # the loser finds them made a moment later.
            if attempt + 1 < _OPEN_TRIES:
                time.sleep(0.5 * (attempt + 1))
                continue
            where = strip_uri_credentials(plan.storage or "memory")
            msg = f"--storage {where}: Optuna cannot open it: {redact_text(str(error))[:300]}"
            raise ValueError(msg) from None
    if plan.metric is not None and study.direction.name.lower() != direction:
        msg = (
            f"study {study_name!r} {study.direction.name.lower()}s its value, this sweep "
            f"{direction}s {plan.metric}: use another --study name or --goal"
        )
        raise ValueError(msg)
    if created and plan.sampler == "grid":
        for point in grid_points(plan.dimensions):
            study.enqueue_trial(point)
    return study, created


def _open(
    optuna: Any, plan: SweepPlan, study_name: str, direction: str, kwargs: dict[str, Any]
) -> tuple[Any, bool]:
    if plan.storage is None:
        return optuna.create_study(study_name=study_name, direction=direction, **kwargs), True
    try:
        study = optuna.create_study(
            storage=plan.storage, study_name=study_name, direction=direction, **kwargs
        )
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(study_name=study_name, storage=plan.storage, **kwargs), False
    return study, True


def wait_for_parent(study: Any, timeout: float) -> tuple[str | None, str | None]:
    """The parent run id (and experiment id) the study's creator stored, waiting for it."""
    deadline = time.monotonic() + timeout
    while True:
        attrs = study.user_attrs
        if attrs.get(PARENT_ATTR):
            return str(attrs[PARENT_ATTR]), attrs.get(EXPERIMENT_ATTR)
        if time.monotonic() >= deadline:
            return None, None
        time.sleep(0.25)


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's per-trial log lines off while a sweep runs: its record shows the trials."""
    optuna = import_optuna()
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)
