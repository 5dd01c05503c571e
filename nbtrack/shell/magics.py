"""``%%track``, ``%track_ui`` and ``%track_compare``: parse options, hand off to
``nbtrack.kernel.cell``, ``nbtrack.sweep`` and ``nbtrack.comparison``."""

from __future__ import annotations

import re
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from nbtrack import _registry
from nbtrack._model import check_key
from nbtrack.kernel import cell as _cell
from nbtrack.kernel import executions
from nbtrack.sweep.plan import PRUNERS, SAMPLERS

_TRACK_LINE = re.compile(r"^%%track(?:[ \t]+(?P<args>.*))?$")


@magics_class
class TrackMagics(Magics):
    @magic_arguments()
    @argument(
        "-e",
        "--experiment",
        help="MLflow experiment to log into (created if missing). Default: the one chosen "
        "for MLflow (mlflow.set_experiment, MLFLOW_EXPERIMENT_NAME, MLFLOW_EXPERIMENT_ID), "
        "else the notebook's file name without .ipynb, else MLflow's Default experiment.",
    )
    @argument("-n", "--name", help="run name shown in MLflow. Default: run-<date>-<time>.")
    @argument(
        "-t",
        "--tag",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="tag for the run; repeat for several.",
    )
    @argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="param for the run; repeat for several. Overrides a captured param of that name.",
    )
    @argument(
        "--no-params",
        action="store_true",
        help="do not capture literal assignments of the cell as params.",
    )
    @argument("--no-plot", action="store_true", help="do not draw the live plot under the cell.")
    @argument(
        "--system",
        action="store_true",
        help="show the system metrics (CPU, memory, GPU; sampled every NBTRACK_SYSTEM_METRICS "
        "seconds) in the live view and the record; they are in MLflow either way.",
    )
    @argument(
        "--sweep",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="run the cell once per trial, NAME's literal assignment in the cell set to each "
        "value tried: a list (grid: every combination), loguniform(LOW, HIGH), "
        "uniform(LOW, HIGH), int(LOW, HIGH) or choice([...]) (searched by TPE with --trials); "
        "repeat for several names. Each trial is a child run of one parent run.",
    )
    @argument("--trials", type=int, help="sweep: how many trials (default: the whole grid).")
    @argument("--sampler", choices=SAMPLERS, help="sweep: grid (lists only), random or tpe.")
    @argument("--sweep-metric", metavar="NAME", help="sweep: the metric to optimise.")
    @argument("--goal", choices=("min", "max"), help="sweep: lower or higher is better.")
    @argument(
        "--sweep-value",
        choices=("last", "best"),
        default="last",
        help="sweep: a trial's value is its metric's last logged value (default) or its best.",
    )
    @argument(
        "--prune",
        nargs="?",
        const="median",
        choices=PRUNERS,
        help="sweep: stop unpromising trials early with an Optuna pruner (default median).",
    )
    @argument("--stop-on-error", action="store_true", help="sweep: stop at a failed trial.")
    @argument("--study", help="sweep: the Optuna study's name (kernels sharing it join it).")
    @argument("--storage", help="sweep: an Optuna storage URL shared by several kernels.")
    @argument("--seed", type=int, help="sweep: seed of the sampler, for a repeatable search.")
    @line_cell_magic
    def track(self, line: str, cell: str | None = None) -> Any:
        """Record this cell as an MLflow run: params, metrics, code, environment, status.

        Put ``%%track`` on the first line of a cell and call ``nbtrack.log(loss=...)`` in it.
        Literal top-level assignments (``lr = 3e-3``) become params, the run ends FINISHED,
        FAILED (exception) or KILLED (interrupt), and the record of the run replaces the live
        plot when the cell ends. Credentials are never logged.
        """
        options = parse_options(line)
        plan = parse_sweep(line)
        if plan is not None:
            return _sweep(self.shell, options, plan, cell)
        if cell is None:
            # The `%%track` line was rewritten into this call (see rewrite_track_cell): the body
            # is the rest of the cell IPython is executing right now, whose end ends the run.
            raw = executions.raw_cell()
            body = raw.split("\n", 1)[1] if "\n" in raw else ""
            _cell.begin(self.shell, options, body)
            return None
        # Called as a real cell magic (e.g. get_ipython().run_cell_magic): the body runs as a
        # cell of its own, inside the calling one, and the run ends with it.
        tracked = _cell.begin(self.shell, options, cell, own_cell=True)
        assert self.shell is not None  # noqa: S101 - magics run inside a shell
        result = self.shell.run_cell(cell, store_history=False)
        _cell.end(tracked, result)
        return None

    @line_magic
    def track_ui(self, line: str) -> Any:
        """Open the MLflow UI for this kernel's tracking store and show its link.

        Usage: ``%track_ui [--local] [TRACKING_URI]``

        Under a Jupyter server that serves this store's MLflow UI through jupyter-server-proxy,
        the link is that one (``<base_url>mlflow/``, behind Jupyter's login) and nothing else is
        started. Otherwise, or with ``--local``, an MLflow UI is started on 127.0.0.1 (or one
        already running for the store is reused); it stops when this kernel ends. A localhost
        UI has no login: every user of this machine can read and change its runs.
        """
        from IPython.display import HTML, display

        from nbtrack.errors import UiStartError
        from nbtrack.tracking import resolve_uri
        from nbtrack.ui.links import proxy_link_html, ui_link_html
        from nbtrack.ui.process import ensure_ui
        from nbtrack.ui.proxy import kernel_proxy_url

        words = line.split()
        local = "--local" in words
        given = [word for word in words if word != "--local"]
        if len(given) > 1 or any(word.startswith("-") for word in given):
            msg = f"%track_ui: cannot read {line!r}; usage: %track_ui [--local] [TRACKING_URI]"
            raise UsageError(msg)
        uri = resolve_uri(given[0] if given else None)
        proxied = None if local else kernel_proxy_url(uri)
        if proxied is not None:
            display(HTML(proxy_link_html(proxied)))
            return None
        try:
            ui = ensure_ui(uri)
        except UiStartError as error:
            # What went wrong and how to fix it, in one line: not a traceback of nbtrack's code.
            raise UsageError(f"%track_ui: {error}") from None
        display(HTML(ui_link_html(ui)))
        return None

    @magic_arguments()
    @argument(
        "runs",
        nargs="*",
        metavar="RUN",
        help="run names or ids to compare. Default: this notebook's newest runs (up to 10).",
    )
    @argument(
        "-m",
        "--metric",
        action="append",
        default=None,
        metavar="NAME",
        help="a metric to draw; repeat for several. Default: every metric.",
    )
    @argument(
        "-x",
        "--x",
        default="auto",
        help="x axis: auto (step, or time where steps don't line up), step, relative or wall.",
    )
    @argument("--notebook", help="compare the runs recorded in this notebook (no store needed).")
    @argument("--store", help="tracking URI to read. Default: this kernel's store.")
    @line_magic
    def track_compare(self, line: str) -> Any:
        """Compare runs: overlaid curves per metric panel, the params that differ, and a link
        to MLflow's comparison view; the same as ``nbtrack.compare(...)``, whose plotly Figure
        it returns (shown below the cell).

        ``%track_compare baseline wide-fast`` compares two runs by name (the newest of each
        name); ``%track_compare`` alone compares this notebook's newest runs.
        """
        from nbtrack import comparison

        try:
            args = TrackMagics.track_compare.parser.parse_args(_tokens(line, "%track_compare"))
        except UsageError as error:
            msg = f"%track_compare: {error}. See `%track_compare?` for the options."
            raise UsageError(msg) from error
        runs: Any = args.runs
        try:
            if not runs:
                runs = _this_notebooks_runs(self.shell, args.notebook, args.store)
            return comparison.compare(
                runs, args.metric, args.x, store=args.store, notebook=args.notebook
            )
        except ValueError as error:
            raise UsageError(f"%track_compare: {error}") from error


def _this_notebooks_runs(shell: Any, notebook: str | None, store: str | None) -> Any:
    from nbtrack import comparison
    from nbtrack.kernel.context import notebook_path
    from nbtrack.tracking import resolve_uri

    if notebook is not None:  # its records (or, with --store, its runs in that store)
        found = comparison.runs(notebook=notebook, store=store)
    else:
        path = notebook_path(shell.user_ns if shell is not None else {})
        if path is None:
            msg = "name the runs to compare: this kernel does not know its notebook's path"
            raise ValueError(msg)
        found = comparison.runs(notebook=path, store=store or resolve_uri())
    if len(found) == 0:
        msg = "no runs of this notebook found to compare"
        raise ValueError(msg)
    return found.head(10)


def _tokens(line: str, magic: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as error:
        msg = f"{magic}: cannot read the options {line!r}: {error}"
        raise UsageError(msg) from error


def parse_options(line: str) -> _cell.CellOptions:
    """Options of ``%%track``; UsageError naming the bad token and the fix."""
    tokens = _tokens(line, "%%track")
    try:
        # The parser magic_arguments built (its errors are UsageErrors), fed shell-like tokens
        # so that quoting works as users expect: -p "note=two words".
        args = TrackMagics.track.parser.parse_args(tokens)
    except UsageError as error:
        msg = f"%%track: {error}. See `%%track?` for the options."
        raise UsageError(msg) from error
    return _cell.CellOptions(
        experiment=args.experiment,
        name=args.name,
        tags=_pairs(args.tag, "--tag"),
        params=_pairs(args.param, "--param"),
        capture_params=not args.no_params,
        plot=not args.no_plot,
        system=args.system,
    )


_SWEEP_ONLY = (
    "trials",
    "sampler",
    "sweep_metric",
    "goal",
    "prune",
    "stop_on_error",
    "study",
    "storage",
    "seed",
)


def parse_sweep(line: str) -> Any:
    """The ``SweepPlan`` of ``%%track --sweep ...``, or None without ``--sweep``; UsageError
    naming the bad option and the fix."""
    args = TrackMagics.track.parser.parse_args(_tokens(line, "%%track"))
    if not args.sweep:
        given = [name for name in _SWEEP_ONLY if getattr(args, name) not in (None, False)]
        if given:
            option = "--" + given[0].replace("_", "-")
            msg = f"%%track: {option} belongs to a sweep; add --sweep NAME=SPEC, or leave it out"
            raise UsageError(msg)
        return None
    from nbtrack.sweep.plan import make_plan

    try:
        return make_plan(
            args.sweep,
            trials=args.trials,
            sampler=args.sampler,
            metric=args.sweep_metric,
            goal=args.goal,
            objective=args.sweep_value,
            pruner=args.prune,
            stop_on_error=args.stop_on_error,
            study=args.study,
            storage=args.storage,
            seed=args.seed,
        )
    except ValueError as error:
        raise UsageError(f"%%track: {error}") from None


def _sweep(shell: Any, options: _cell.CellOptions, plan: Any, body: str | None) -> None:
    from nbtrack.sweep.runner import run_sweep

    if body is None:  # `%track --sweep` as a line magic: there is no cell to sweep
        msg = "%%track --sweep runs a cell: put it on the first line of the cell to sweep"
        raise UsageError(msg)
    current = _registry.current()
    if current is not None:
        msg = (
            f"%%track --sweep cannot run inside the tracked cell of run {current.run.run_name!r}: "
            "sweep in a cell of its own"
        )
        raise UsageError(msg)
    try:
        run_sweep(shell, options, plan, body)
    except (ValueError, ImportError) as error:
        raise UsageError(f"%%track: {error}") from None


def _pairs(items: list[str], option: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            msg = f"%%track: {option} expects KEY=VALUE, got {item!r}; e.g. {option} team=vision"
            raise UsageError(msg)
        try:
            check_key(key, option.strip("-"))
        except ValueError as error:
            msg = f"%%track: {option} {item!r}: {error}"
            raise UsageError(msg) from error
        pairs[key] = value
    return pairs


def _is_sweep(args: str) -> bool:
    try:
        tokens = shlex.split(args)
    except ValueError:
        return False  # parse_options reports it
    return any(word == "--sweep" or word.startswith("--sweep=") for word in tokens)


def rewrite_track_cell(lines: list[str]) -> list[str]:
    """IPython input transformer: ``%%track OPTIONS`` on line 1 becomes a ``%track`` call.

    The body then stays ordinary cell code, which IPython runs exactly as untracked (last
    expression shown, ``await`` allowed, tracebacks with the right line numbers), instead of
    the string argument of a cell magic.
    """
    if not lines:
        return lines
    match = _TRACK_LINE.match(lines[0].rstrip("\r\n"))
    if match is None:
        return lines
    args = (match["args"] or "").strip()
    if _is_sweep(args):
        # A sweep runs the body once per trial: it stays the cell magic's argument.
        return lines
    call = f"get_ipython().run_line_magic('track', {args!r})\n"
    return [call, *lines[1:]]
