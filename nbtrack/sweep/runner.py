"""Running a sweep: ``%%track --sweep "lr=[1e-3, 3e-3]" ...`` runs the cell once per trial.

The runner owns the sweep's runs: it starts the parent run, then for each trial asks Optuna
for values, runs the cell's code with them (``substitute``) as a run of its own (``begin``
with ``own_cell``, a child of the parent), ends it with its outcome and tells Optuna, and
ends the parent when the sweep is over. Nothing else ends them: a trial's code runs as a
silent cell (no cell events, so no cell's end can end a trial), and a ``%%track`` inside it
is refused as in any tracked cell.

Interrupts are held back everywhere but while a trial's code runs: an interrupt there ends
that trial KILLED, the parent KILLED, and then interrupts the sweep's cell as it would any
cell. A failing trial ends FAILED, with its traceback under the cell, and the sweep goes on
(``--stop-on-error`` stops it); a pruned one ends KILLED, tagged ``nbtrack.pruned``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from typing import Any

from nbtrack._buffer import log_into
from nbtrack._interrupts import HeldInterrupts, interrupts_deferred
from nbtrack._model import Batch, Run, Status
from nbtrack._registry import TrackedRun
from nbtrack.errors import SweepError
from nbtrack.kernel import cell
from nbtrack.kernel.context import end_wait, watching
from nbtrack.kernel.progress import learn_identity
from nbtrack.record.metrics import metric_goal
from nbtrack.sweep.outcome import quiet_pruned, run_status, trial_state, trial_value
from nbtrack.sweep.plan import SweepPlan
from nbtrack.sweep.pruning import PruneWatch
from nbtrack.sweep.state import SweepState, SweepView, TrialFeed, guess_metric
from nbtrack.sweep.study import (
    EXPERIMENT_ATTR,
    PARENT_ATTR,
    open_study,
    quiet_optuna,
    wait_for_parent,
)
from nbtrack.sweep.substitute import substitute

__all__ = ["run_sweep"]

# How long a kernel joining a shared study waits for the parent run's id from the kernel that
# created the study (whose sync process creates the run; a new store takes a few seconds).
_PARENT_WAIT_S = 60.0
_STATES = {"COMPLETE": "COMPLETE", "PRUNED": "PRUNED", "FAIL": "FAILED", "RUNNING": "RUNNING"}


def run_sweep(shell: Any, options: cell.CellOptions, plan: SweepPlan, body: str) -> None:
    """Run ``body`` once per trial of ``plan``. Raises ``ValueError`` for a plan the cell or
    the storage cannot serve (before any run starts), ``SweepError`` when a trial failed with
    ``stop_on_error`` or every trial failed, and ``KeyboardInterrupt`` when interrupted."""
    from nbtrack.sweep.substitute import check_swept_names

    python = str(shell.transform_cell(body))
    check_swept_names(python, plan.names)
    name = options.name or time.strftime("sweep-%Y%m%d-%H%M%S")
    with quiet_optuna():
        study, created = open_study(plan, name)
        goal = plan.goal or (metric_goal(plan.metric) if plan.metric else None)
        sweep = SweepState(
            study.study_name,
            plan.sampler,
            plan.trials,
            metric=plan.metric,
            goal=goal,
            objective=plan.objective,
        )
        _Runner(
            shell,
            options,
            plan,
            body=body,
            python=python,
            study=study,
            sweep=sweep,
            created=created,
            name=name,
        ).run()


class _Runner:
    def __init__(
        self,
        shell: Any,
        options: cell.CellOptions,
        plan: SweepPlan,
        *,
        body: str,
        python: str,
        study: Any,
        sweep: SweepState,
        created: bool,
        name: str,
    ) -> None:
        self.shell, self.options, self.plan, self.body, self.python = (
            shell,
            options,
            plan,
            body,
            python,
        )
        self.study, self.sweep, self.created, self.name = study, sweep, created, name
        self.parent: TrackedRun | None = None
        self.parent_run: Run | None = None  # the run the record shows (another kernel's parent)
        self.parent_id: str | None = None
        self.view: SweepView | None = None
        self.trial: TrackedRun | None = None
        self.trial_runs: list[TrackedRun] = []
        self.counts: dict[str, int] = {}
        self.held: HeldInterrupts | None = None

    # ------------------------------------------------------------------ the sweep

    def run(self) -> None:
        import optuna

        error: BaseException | None = None
        restore = quiet_pruned(self.shell, optuna.TrialPruned)
        with interrupts_deferred(raise_held=False) as held:
            self.held = held
            try:
                self._begin_parent()
                while self._next_trial():
                    if held.pending:
                        raise KeyboardInterrupt
            except BaseException as stopped:  # noqa: BLE001 - every way out ends the runs
                error = stopped
            if error is None and not self.counts.get("COMPLETE") and self.counts:
                error = SweepError(f"every trial of the sweep failed ({self._counted()})")
            try:
                self._end(error)
            finally:
                restore()
        if error is not None:
            raise error

    def _begin_parent(self) -> None:
        options, plan = self.options, self.plan
        tags = {**options.tags, "nbtrack.sweep": self.study.study_name}
        if plan.storage is not None:
            tags["nbtrack.study"] = self.study.study_name
        if plan.storage is None or self.created:
            parent_options = dataclasses.replace(
                options,
                name=self.name,
                tags=tags,
                capture_params=False,
                params={**options.params, **plan.settings()},
            )

            def view(run: Run, lock: threading.Lock) -> SweepView:
                return SweepView(run, lock, self.sweep)

            self.parent = cell.begin(
                self.shell, parent_options, self.body, background=True, view=view
            )
            self.parent_run = self.parent.run
            self.view = next((v for v in self.parent.views if isinstance(v, SweepView)), None)
            return
        # Another kernel created the study, and the parent run with it.
        assert self.held is not None  # noqa: S101 - set by run()
        with self.held.interruptible():
            self.parent_id, experiment_id = wait_for_parent(self.study, _PARENT_WAIT_S)
        if self.parent_id is None:
            msg = (
                f"study {self.study.study_name!r}: the kernel that created it has not "
                f"stored its parent run's id within {_PARENT_WAIT_S:.0f} s (is its tracking "
                "store reachable?); run this cell again once it has"
            )
            raise SweepError(msg)
        from nbtrack.tracking import resolve_uri

        self.parent_run = Run(
            run_name=self.study.study_name,
            experiment_name=options.experiment or "Default",
            tracking_uri=resolve_uri(),
            run_id=self.parent_id,
            experiment_id=experiment_id,
            live_view=options.plot and watching(),
        )
        learn_identity(self.parent_run, self.parent_id, experiment_id)
        self.view = SweepView(self.parent_run, threading.Lock(), self.sweep)

    def _next_trial(self) -> bool:
        """Ask, run and tell one trial; False once the sweep has run its trials."""
        from optuna.trial import TrialState

        self._share_parent_id()
        self._merge_others()
        trial = self.study.ask()
        if trial.number >= self.plan.trials:
            # Kernels sharing the study asked for more than planned: this one is not run.
            trial.set_user_attr("nbtrack.surplus", True)
            self.study.tell(trial, state=TrialState.FAIL)
            return False
        values = {d.name: d.suggest(trial) for d in self.plan.dimensions}
        code = substitute(self.body, self.python, values)
        tracked = self._begin_trial(trial.number, values, code)
        watch = None
        if self.plan.pruner and self.sweep.metric:
            watch = PruneWatch(tracked, trial, self.sweep.metric)
        assert self.held is not None  # noqa: S101 - set by run()
        with self.held.interruptible():
            result = self.shell.run_cell(code, silent=True)
        error = result.error_in_exec or result.error_before_exec
        state = trial_state(error, watch)
        extra = {"nbtrack.trial_state": state}
        if state == "PRUNED" and watch is not None and watch.pruned_at is not None:
            extra["nbtrack.pruned"] = f"at step {watch.pruned_at} ({self.sweep.metric})"
        tracked.buffer.pending.append(("tags", extra))
        cell.end(
            tracked,
            result,
            wait=False,
            status=Status.KILLED if state in ("PRUNED", "KILLED") else None,
        )
        self.trial = None
        self._told(trial, tracked.run, state)
        if state == "KILLED":
            raise KeyboardInterrupt
        if state == "FAILED" and self.plan.stop_on_error:
            msg = f"trial {trial.number} failed ({type(error).__name__}: {error}); --stop-on-error"
            raise SweepError(msg) from error
        return trial.number + 1 < self.plan.trials or self.plan.storage is not None

    def _begin_trial(self, number: int, values: dict[str, Any], code: str) -> TrackedRun:
        options = self.options
        tags = {
            **options.tags,
            "nbtrack.sweep": self.study.study_name,
            "nbtrack.trial": str(number),
        }
        if self.parent_id is not None and self.parent is None:
            tags["mlflow.parentRunId"] = self.parent_id
        trial_options = dataclasses.replace(
            options,
            name=f"{self.name}-{number}",
            tags=tags,
            plot=False,
            record=False,
            parent_journal=None if self.parent is None else self.parent.journal.key,
        )
        tracked = cell.begin(self.shell, trial_options, code, own_cell=True)
        self.trial = tracked
        self.trial_runs.append(tracked)
        tracked.views.append(TrialFeed(self.sweep, number, self.view, self._shown()))
        self.sweep.started(number, tracked.run.run_name, values, tracked.run)
        self._redraw()
        return tracked

    def _told(self, trial: Any, run: Run, state: str) -> None:
        """Tell Optuna how the trial went; the sweep's table and the parent's curve follow."""
        from optuna.trial import TrialState

        sweep = self.sweep
        if sweep.metric is None:
            sweep.metric = guess_metric(list(run.curves))
            sweep.goal = sweep.goal or (metric_goal(sweep.metric) if sweep.metric else None)
        value = trial_value(run, sweep.metric, sweep.goal, self.plan.objective)
        sweep.feed(trial.number, run)  # the trial ended: its curves are final
        if state == "COMPLETE" and value is not None:
            self.study.tell(trial, value)
        elif state == "PRUNED":
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            self.study.tell(trial, state=TrialState.FAIL)
        self.counts[state] = self.counts.get(state, 0) + 1
        sweep.finished(trial.number, state, value)
        if state == "COMPLETE" and value is not None and self.parent is not None:
            # The parent's own curve: each completed trial's value, at its trial number.
            log_into(self.parent.buffer, {str(sweep.metric): value}, trial.number)
        self._redraw()

    # ------------------------------------------------------------------ the end

    def _end(self, error: BaseException | None) -> None:
        trial = self.trial
        if trial is not None and not trial.run.ended:
            # Interrupted outside the trial's code (before or after it ran): ended KILLED.
            cell.end(trial, None, wait=False)
            number = int(trial.run.tags.get("nbtrack.trial", "-1"))
            self.sweep.finished(number, "KILLED", None)
        self._wait_for_trials()
        self._share_parent_id(wait=True)
        self._merge_others()
        if self.parent is not None:
            if self.sweep.metric:
                self.parent.buffer.pending.append(("tags", self._best_tags()))
            cell.end_background(self.parent, error)
        elif self.parent_run is not None and self.view is not None:
            run = self.parent_run
            run.status = run_status(error)
            run.end_time_ms = int(time.time() * 1000)
            self.view.finish(run)

    def _wait_for_trials(self) -> None:
        """Headless, wait until the trials are stored, so that the record links them."""
        seconds = end_wait()
        if not self.trial_runs or seconds <= 0 or self.held is None or self.held.pending:
            return
        session = self.trial_runs[-1].journal.session
        with contextlib.suppress(KeyboardInterrupt), self.held.interruptible():
            session.wait(
                seconds, until=lambda: all(t.journal.progress().synced for t in self.trial_runs)
            )
        for tracked in self.trial_runs:
            progress = tracked.journal.progress()
            if progress.run_id is not None:
                learn_identity(
                    tracked.run, progress.run_id, progress.experiment_id, progress.experiment_name
                )

    def _share_parent_id(self, *, wait: bool = False) -> None:
        """The creator of a shared study stores its parent run's id there for the others."""
        if self.plan.storage is None or self.parent is None or not self.created:
            return
        if self.study.user_attrs.get(PARENT_ATTR):
            return
        journal = self.parent.journal
        run_id = journal.wait_for_run_id(_PARENT_WAIT_S) if wait else journal.progress().run_id
        if run_id is not None:
            self.study.set_user_attr(PARENT_ATTR, run_id)
            self.study.set_user_attr(EXPERIMENT_ATTR, journal.progress().experiment_id)

    def _merge_others(self) -> None:
        """A shared study: the trials other kernels ran, for the table."""
        if self.plan.storage is None:
            return
        others = []
        for frozen in self.study.get_trials(deepcopy=False):
            state = _STATES.get(frozen.state.name)
            if state is None or frozen.user_attrs.get("nbtrack.surplus"):
                continue
            others.append(
                {
                    "number": frozen.number,
                    "name": f"trial {frozen.number}",
                    "params": {k: repr(v) for k, v in frozen.params.items()},
                    "state": state,
                    "value": frozen.value,
                }
            )
        self.sweep.merge(others)

    def _best_tags(self) -> dict[str, str]:
        source = self.sweep.source()
        from nbtrack.record.sweep import best_params_code, sweep_json

        section = sweep_json(source)
        tags = {"nbtrack.sweep.metric": str(self.sweep.metric)}
        if section["best"] is not None:
            tags["nbtrack.sweep.best_trial"] = str(section["best"])
            code = best_params_code(section)
            if code is not None:
                tags["nbtrack.sweep.best_params"] = code[1][:4900]
        return tags

    def _shown(self) -> Run:
        assert self.parent_run is not None  # noqa: S101 - set by _begin_parent
        return self.parent_run

    def _redraw(self) -> None:
        if self.view is not None and self.parent_run is not None:
            lock = self.parent.drain_lock if self.parent is not None else threading.Lock()
            with lock:
                self.view.update(self.parent_run, Batch())

    def _counted(self) -> str:
        return ", ".join(f"{n} {state.lower()}" for state, n in sorted(self.counts.items()))
