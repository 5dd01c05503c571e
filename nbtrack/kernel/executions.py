"""The cells IPython is executing right now, outermost first.

A cell can run other cells (``get_ipython().run_cell(...)``, a magic that does): IPython then
fires their ``pre_run_cell`` and ``post_run_cell`` events in the middle of the outer cell. A
tracked run belongs to the execution that started it, and only that execution's end may end
it. Executions are IPython's own ``ExecutionInfo`` objects, which ``pre_run_cell`` receives and
``post_run_cell``'s result carries.

Events can go missing: an empty cell ends without having started, a callback interrupted by a
kernel interrupt never records anything. So the list is also trimmed to how many cells really
run, counted on the Python stack (IPython's ``run_cell_async`` frames): an entry whose
execution is over never outlives it, whatever events were lost.
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

__all__ = ["cell_id", "ended", "innermost", "is_running", "raw_cell", "started"]

_running: list[Any] = []
# Whether run_cell_async frames were ever found: false only with an IPython whose internals
# changed, where the events alone are followed.
_frames_counted = False


def started(info: Any) -> None:
    """IPython's pre_run_cell: ``info`` (an ``ExecutionInfo``) begins, inside the others."""
    global _frames_counted  # noqa: PLW0603 - learnt once
    depth = _depth()
    if depth:
        _frames_counted = True
        del _running[depth - 1 :]  # left by executions that ended unreported
    _running.append(info)


def ended(result: Any) -> None:
    """IPython's post_run_cell: the execution of ``result`` (an ``ExecutionResult``) is over."""
    if _frames_counted:
        # The cells around this one still have their frames; this one's are gone.
        del _running[_depth() :]
        return
    info = getattr(result, "info", None)
    for index in range(len(_running) - 1, -1, -1):
        if _running[index] is info:
            del _running[index:]
            return


def innermost() -> Any | None:
    """The execution the calling code runs in (its ``ExecutionInfo``), or None outside any
    cell (a silent execution, a comm message)."""
    return _running[-1] if _running else None


def is_running(info: Any) -> bool:
    return info is not None and any(running is info for running in _running)


def raw_cell() -> str:
    """The code of the innermost cell being executed, as typed."""
    return str(getattr(innermost(), "raw_cell", "") or "")


def cell_id() -> str | None:
    """The notebook's id of the innermost cell being executed, when the frontend sent one."""
    found = getattr(innermost(), "cell_id", None)
    return None if found is None else str(found)


_run_cell_code: Any = None


def _depth() -> int:
    """How many cells are executing around the caller: IPython's ``run_cell_async`` frames on
    this thread's stack (a nested ``run_cell`` adds one)."""
    global _run_cell_code  # noqa: PLW0603 - resolved once
    if _run_cell_code is None:
        from IPython.core.interactiveshell import InteractiveShell

        _run_cell_code = InteractiveShell.run_cell_async.__code__
    depth = 0
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code is _run_cell_code:
            depth += 1
        frame = frame.f_back
    return depth
