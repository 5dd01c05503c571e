"""Begin and end of a tracked cell: the run's lifecycle around IPython's own execution.

The cell runs exactly as IPython would run it untracked (same namespace, last expression
displayed, top-level ``await``, the same traceback); nbtrack only starts the run before the
body and ends it in IPython's ``post_run_cell`` event, with the status the execution result
tells: FINISHED, FAILED (exception) or KILLED (KeyboardInterrupt, i.e. a kernel interrupt).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import threading
import time
import traceback
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbtrack import _sender, store
from nbtrack import run as runs
from nbtrack.context import notebook_path
from nbtrack.errors import NbtrackWarning
from nbtrack.params import capture_params, is_papermill_parameters
from nbtrack.secrets import redact_code, redact_text, strip_uri_credentials
from nbtrack.sinks.display import show_notice

KERNEL_SESSION = uuid.uuid4().hex
_DEFAULT_END_WAIT_S = 1.0


@dataclass
class CellOptions:
    """What ``%%track`` was told (already validated)."""

    experiment: str | None = None
    name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    capture_params: bool = True
    plot: bool = True


@dataclass
class CellInfo:
    """The cell being executed, as IPython's pre_run_cell event described it."""

    raw_cell: str = ""
    cell_id: str | None = None


current_cell = CellInfo()


# ------------------------------------------------------------------ warm-up and per-kernel state

_warm = threading.Event()
_warm_started = False
_environment: tuple[str, str] | None = None


def start_warm_up() -> None:
    """Import MLflow, open the store and read the environment in the background, once."""
    global _warm_started  # noqa: PLW0603 - once per kernel
    if _warm_started:
        return
    _warm_started = True

    def work() -> None:
        try:
            store.warm_up()
            from nbtrack.sinks.mlflow import adopt_orphans

            adopt_orphans(store.tracking_uri())
            _environment_files()
        except Exception as error:  # noqa: BLE001 - the first tracked cell will report it properly
            warnings.warn(
                f"nbtrack: warming up MLflow failed: {error!r}", NbtrackWarning, stacklevel=1
            )
        finally:
            _warm.set()

    threading.Thread(target=work, name="nbtrack-warmup", daemon=True).start()


def _environment_files() -> tuple[str, str]:
    global _environment  # noqa: PLW0603 - computed once per kernel: the environment rarely changes
    if _environment is None:
        from nbtrack.context import environment_json, requirements

        _environment = (environment_json(), requirements())
    return _environment


# ------------------------------------------------------------------ begin


def begin(shell: Any, options: CellOptions, body: str) -> runs.Run:
    """Start tracking ``body`` (the cell without its ``%%track`` line)."""
    if runs.current() is not None:
        from IPython.core.error import UsageError

        msg = "this cell is already tracked: use %%track (or %track) once per cell"
        raise UsageError(msg)
    start_warm_up()
    _warm.wait(timeout=30)
    from nbtrack.sinks.display import DisplaySink
    from nbtrack.sinks.mlflow import SpoolSink, session_for

    user_ns = shell.user_ns
    path = notebook_path(user_ns)
    uri = store.tracking_uri()
    code_hash = hashlib.sha256(body.encode()).hexdigest()[:16]
    run = runs.Run(
        run_name=options.name or _default_run_name(),
        experiment_name=options.experiment or _default_experiment(path),
        tracking_uri=uri,
        notebook_path=path,
        cell_id=current_cell.cell_id,
        live_plot=options.plot and _live_plot_wanted(),
    )
    run.tags.update(
        {
            "mlflow.source.type": "NOTEBOOK",
            "mlflow.source.name": path or "<unsaved notebook>",
            "nbtrack.code_hash": code_hash,
            "nbtrack.kernel_session": KERNEL_SESSION,
            "nbtrack.version": _version(),
            "nbtrack.cell": current_cell.cell_id or code_hash,
        }
    )
    if current_cell.cell_id:
        run.tags["nbtrack.cell_id"] = current_cell.cell_id
    run.tags.update(options.tags)

    params: dict[str, Any] = {}
    if options.capture_params:
        params.update(_papermill_params(shell))
        params.update(capture_params(_python_source(shell, body)))
    params.update(options.params)
    run.add_params(params)

    problem = store.reachable(uri)
    # From creating the run in the store to registering it, an interrupt would leave a run
    # RUNNING that nobody ends: SIGINT waits until the run is registered, then ends it KILLED.
    with _sigint_deferred():
        if problem is None:
            try:
                store.start(run)
            except ValueError:
                raise
            except Exception as error:  # noqa: BLE001 - any store failure: go offline, lose nothing
                problem = f"{type(error).__name__}: {error}"
        session = session_for(uri)
        run.sinks = [SpoolSink(session), DisplaySink()]
        _sender.ensure_sender()
        for sink in run.sinks:
            sink.start(run)
        runs.activate(run)
    if problem is not None:
        run.sync_state = "offline"
        show_notice(
            f"nbtrack: the tracking store {strip_uri_credentials(uri)} is not reachable "
            f"({redact_text(problem)}). The run goes on offline: everything is kept in the local "
            "spool and uploaded when the store answers (or with `nbtrack sync`)."
        )
    if run.params:
        run.pending.append(("params", dict(run.params)))
    _stage_code_and_environment(shell, run, body)
    return run


def _stage_code_and_environment(shell: Any, run: runs.Run, body: str) -> None:
    assert run.staging_dir is not None  # noqa: S101 - set by SpoolSink.start
    code = run.staging_dir / "code"
    env = run.staging_dir / "environment"
    code.mkdir(parents=True, exist_ok=True)
    env.mkdir(parents=True, exist_ok=True)
    (code / "cell.py").write_text(redact_code(body))
    history = _session_history(shell)
    (code / "session_history.py").write_text(history)
    environment, requirements = _environment_files()
    (env / "environment.json").write_text(environment)
    (env / "requirements.txt").write_text(requirements)
    run.pending.append(("artifact", (code, "code")))
    run.pending.append(("artifact", (env, "environment")))


def _session_history(shell: Any) -> str:
    """Cells executed in this kernel before the tracked one, in order, secrets redacted."""
    raw = list(getattr(shell.history_manager, "input_hist_raw", []))[1:-1]
    parts = [
        f"# [{number}]\n{redact_code(cell)}" for number, cell in enumerate(raw, 1) if cell.strip()
    ]
    return "\n\n".join(parts) + "\n"


def _papermill_params(shell: Any) -> dict[str, Any]:
    for cell in reversed(list(getattr(shell.history_manager, "input_hist_raw", []))):
        if is_papermill_parameters(cell):
            return capture_params(cell)
    return {}


def _python_source(shell: Any, body: str) -> str:
    try:
        return str(shell.transform_cell(body))
    except Exception:  # noqa: BLE001 - IPython will report the syntax problem when it runs the cell
        return body


def _default_run_name() -> str:
    return time.strftime("run-%Y%m%d-%H%M%S")


def _default_experiment(path: str | None) -> str:
    # MLflow's own default experiment when the notebook's name cannot be known.
    return Path(path).stem if path else "Default"


def _live_plot_wanted() -> bool:
    """Draw live only where a person watches: JupyterLab/Notebook or VS Code, not nbclient,
    papermill or nbconvert (``NBTRACK_LIVE_PLOT=0/1`` decides explicitly)."""
    explicit = os.environ.get("NBTRACK_LIVE_PLOT")
    if explicit is not None:
        return explicit.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(os.environ.get("JPY_SESSION_NAME") or os.environ.get("VSCODE_PID"))


def _version() -> str:
    from nbtrack import __version__

    return __version__


# ------------------------------------------------------------------ end


def end(result: Any) -> None:
    """IPython's post_run_cell: end the run this cell started, whatever happened in it."""
    run = runs.current()
    if run is None:
        return
    from nbtrack.sinks.mlflow import SpoolSink, session_for

    error = None if result is None else (result.error_in_exec or result.error_before_exec)
    spool_sink = next(s for s in run.sinks if isinstance(s, SpoolSink))
    with _sigint_deferred():
        runs.deactivate(run)
        _finish(run, error, spool_sink)
    session = session_for(run.tracking_uri)
    spool = spool_sink.spool
    wait_s = float(os.environ.get("NBTRACK_END_WAIT", _DEFAULT_END_WAIT_S))
    try:
        synced = session.wait(wait_s, spool)
    except KeyboardInterrupt:
        synced = False
    if run.run_id is None and spool is not None:
        run.run_id = session.uploaded_run_id(spool)
    if synced:
        run.sync_state = "synced"
    else:
        if run.sync_state != "offline":
            run.sync_state = "syncing"
        run.pending_points = session.pending_points(
            spool, total=sum(c.count for c in run.curves.values())
        )
    # The record is drawn last, when the sync state it shows is known.
    for sink in run.sinks:
        if sink is not spool_sink:
            _end_sink(sink, run)
    runs.forget(run)


def _finish(run: runs.Run, error: BaseException | None, spool_sink: Any) -> None:
    """Status, final drain and the spool's end line: done with SIGINT held back, so an
    interrupt cannot leave the run half-ended."""
    if error is None:
        run.status = runs.Status.FINISHED
    elif isinstance(error, KeyboardInterrupt):
        run.status = runs.Status.KILLED
    else:
        run.status = runs.Status.FAILED
    if error is not None:
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        run.error = runs.RunError(type(error).__name__, redact_text(str(error)), redact_code(text))
        run.pending.append(
            (
                "tags",
                {
                    "nbtrack.error": redact_text(f"{type(error).__name__}: {error}")[:4900],
                    "mlflow.note.content": (
                        f"Cell ended {run.status.value}:\n```\n{run.error.traceback[-4500:]}```"
                    ),
                },
            )
        )
        if run.staging_dir is not None:
            error_dir = run.staging_dir / "error"
            error_dir.mkdir(parents=True, exist_ok=True)
            (error_dir / "traceback.txt").write_text(run.error.traceback)
            run.pending.append(("artifact", (error_dir, "error")))
    run.end_time_ms = int(time.time() * 1000)
    store.release(run)
    _sender.drain(run)
    _end_sink(spool_sink, run)


def _end_sink(sink: Any, run: runs.Run) -> None:
    try:
        sink.end(run)
    except Exception as error:  # noqa: BLE001 - the run's other outputs must still happen
        warnings.warn(
            f"nbtrack: {type(sink).__name__} failed at cell end: {error!r}",
            NbtrackWarning,
            stacklevel=2,
        )


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold SIGINT (a kernel interrupt) back in the main thread; it is delivered on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
