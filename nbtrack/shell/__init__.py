"""nbtrack in an IPython shell: ``register`` wires in the magics (``magics``), an input
transformer for ``%%track`` cells, and the cell events that start and end a tracked cell's run
(``nbtrack.kernel.cell``).

This package sits above ``nbtrack.kernel`` and ``nbtrack.sweep``: the magics hand a cell to
one or the other.
"""

from __future__ import annotations

import contextlib
from typing import Any

from nbtrack.kernel import cell, run_data

__all__ = ["register", "unregister"]

_registered: set[int] = set()


def register(shell: Any) -> None:
    if id(shell) in _registered:
        return
    _registered.add(id(shell))
    from nbtrack.shell.magics import TrackMagics, rewrite_track_cell

    shell.register_magics(TrackMagics)
    # Cleanup transforms run before IPython turns `%%name` cells into cell-magic calls.
    shell.input_transformers_cleanup.append(rewrite_track_cell)
    shell.events.register("pre_run_cell", _pre_run_cell)
    shell.events.register("post_run_cell", _post_run_cell)
    shell.events.register("post_run_cell", _post_run_cell_backstop)
    # Cells run before nbtrack was loaded (papermill's parameters, a hyperparameter cell) can
    # hold a tracked cell's params too.
    for source in list(getattr(shell.history_manager, "input_hist_raw", []))[1:]:
        _observe(shell, source)
    cell.warm_up()


def unregister(shell: Any) -> None:
    from nbtrack.shell.magics import rewrite_track_cell

    if id(shell) not in _registered:
        return
    _registered.discard(id(shell))
    if rewrite_track_cell in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.remove(rewrite_track_cell)
    for event, callback in (
        ("pre_run_cell", _pre_run_cell),
        ("post_run_cell", _post_run_cell),
        ("post_run_cell", _post_run_cell_backstop),
    ):
        with contextlib.suppress(ValueError):
            shell.events.unregister(event, callback)


def _pre_run_cell(info: Any) -> None:
    from IPython import get_ipython

    cell.cell_started(get_ipython(), info)


def _post_run_cell(result: Any) -> None:
    _end_cell(result)
    info = getattr(result, "info", None)
    source = getattr(info, "raw_cell", None)
    if source:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            _observe(shell, source)


def _post_run_cell_backstop(result: Any) -> None:
    """Registered right after ``_post_run_cell``. An interrupt at that handler's very first
    bytecode escapes it, and IPython goes on to the next handler: this one, which then ends
    the run, with its cell. Where the first handler ended it, this finds nothing to end
    (``cell_ended`` ends a run once); when it does end one, an interrupt came, so it does not
    wait for the upload."""
    _end_cell(result, interrupted=True)


def _end_cell(result: Any, *, interrupted: bool = False) -> None:
    # An interrupt can land in the first bytecodes of the run's end, before cell_ended holds
    # interrupts back: it then ended nothing. The cell's code is over, so it only means "do
    # not wait for the upload", and the run is ended all the same. (One that lands in
    # IPython's own code between the cell and these handlers leaves the run to the next
    # cell's start: cell.cell_started.)
    for _ in range(3):
        try:
            cell.cell_ended(result, interrupted=interrupted)
            return
        except KeyboardInterrupt:
            interrupted = True


def _observe(shell: Any, source: str) -> None:
    try:
        python = shell.transform_cell(source)
    except Exception:  # noqa: BLE001 - a cell IPython could not read binds nothing we can see
        return
    run_data.session_literals.observe(python)
