"""``%%track`` and ``%track_ui``: parse options, hand off to ``nbtrack.kernel.cell``."""

from __future__ import annotations

import re
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from nbtrack._model import check_key
from nbtrack.kernel import cell as _cell

_TRACK_LINE = re.compile(r"^%%track(?:[ \t]+(?P<args>.*))?$")


@magics_class
class TrackMagics(Magics):
    @magic_arguments()
    @argument(
        "-e",
        "--experiment",
        help="MLflow experiment to log into (created if missing). Default: the notebook's "
        "file name without .ipynb, or MLflow's Default experiment when it cannot be known.",
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
    @line_cell_magic
    def track(self, line: str, cell: str | None = None) -> Any:
        """Record this cell as an MLflow run: params, metrics, code, environment, status.

        Put ``%%track`` on the first line of a cell and call ``nbtrack.log(loss=...)`` in it.
        Literal top-level assignments (``lr = 3e-3``) become params, the run ends FINISHED,
        FAILED (exception) or KILLED (interrupt), and the record of the run replaces the live
        plot when the cell ends. Credentials are never logged.
        """
        options = parse_options(line)
        if cell is None:
            # The `%%track` line was rewritten into this call (see rewrite_track_cell): the body
            # is the rest of the cell IPython is executing right now.
            body = (
                _cell.current_cell.raw_cell.split("\n", 1)[1]
                if "\n" in _cell.current_cell.raw_cell
                else ""
            )
            _cell.begin(self.shell, options, body)
            return None
        # Called as a real cell magic (e.g. get_ipython().run_cell_magic): run the body as a
        # cell of its own; its post_run_cell ends the run.
        _cell.begin(self.shell, options, cell)
        assert self.shell is not None  # noqa: S101 - magics run inside a shell
        result = self.shell.run_cell(cell, store_history=False)
        _cell.end(result)
        return None

    @line_magic
    def track_ui(self, line: str) -> Any:
        """Open the MLflow UI for this kernel's tracking store and show its link.

        Starts ``mlflow ui`` bound to 127.0.0.1 on a free port, or reuses one already running
        for the same store.
        """
        from IPython.display import HTML, display

        from nbtrack.tracking import resolve_uri
        from nbtrack.ui.links import ui_link_html
        from nbtrack.ui.process import ensure_ui

        ui = ensure_ui(resolve_uri(line.strip() or None))
        display(HTML(ui_link_html(ui)))
        return None


def parse_options(line: str) -> _cell.CellOptions:
    """Options of ``%%track``; UsageError naming the bad token and the fix."""
    try:
        tokens = shlex.split(line)
    except ValueError as error:
        msg = f"%%track: cannot read the options {line!r}: {error}"
        raise UsageError(msg) from error
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
    call = f"get_ipython().run_line_magic('track', {args!r})\n"
    return [call, *lines[1:]]
