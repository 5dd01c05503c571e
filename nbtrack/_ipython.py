"""Wiring into IPython: the magics, the input transformer and the cell events."""

from __future__ import annotations

import contextlib
from typing import Any

from nbtrack import _cell

_registered: set[int] = set()


def register(shell: Any) -> None:
    if id(shell) in _registered:
        return
    _registered.add(id(shell))
    from nbtrack._magics import TrackMagics, rewrite_track_cell

    shell.register_magics(TrackMagics)
    # Cleanup transforms run before IPython turns `%%name` cells into cell-magic calls.
    shell.input_transformers_cleanup.append(rewrite_track_cell)
    shell.events.register("pre_run_cell", _pre_run_cell)
    shell.events.register("post_run_cell", _post_run_cell)
    shell.events.register("post_execute", _post_execute)
    shell.user_ns.setdefault("nbtrack", __import__("nbtrack"))


def unregister(shell: Any) -> None:
    from nbtrack._magics import rewrite_track_cell

    if id(shell) not in _registered:
        return
    _registered.discard(id(shell))
    if rewrite_track_cell in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.remove(rewrite_track_cell)
    for event, callback in (
        ("pre_run_cell", _pre_run_cell),
        ("post_run_cell", _post_run_cell),
        ("post_execute", _post_execute),
    ):
        with contextlib.suppress(ValueError):
            shell.events.unregister(event, callback)


def _pre_run_cell(info: Any) -> None:
    _cell.current_cell.raw_cell = getattr(info, "raw_cell", "") or ""
    _cell.current_cell.cell_id = getattr(info, "cell_id", None)


def _post_run_cell(result: Any) -> None:
    # Interrupting the end of a cell skips the wait; the run was already ended.
    with contextlib.suppress(KeyboardInterrupt):
        _cell.end(result)


def _post_execute() -> None:
    # After the cell that loaded nbtrack finished: loading itself stays instant, and MLflow is
    # ready before the first tracked cell.
    _cell.start_warm_up()
