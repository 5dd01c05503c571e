"""``python -m nbtrack.ui.guard COMMAND...``: run an MLflow UI only while the process that
started it lives.

The starter (a kernel's ``%track_ui``, the Jupyter server extension, ``nbtrack ui`` in the
foreground) holds the write end of this process's stdin and never writes to it. When the starter
ends, however it ends (exit, crash, out of memory, SIGKILL), the pipe closes and the guard stops
the UI's whole process group, which it leads: a UI open to every local user must not outlive
the session that asked for it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

from nbtrack import _platform

__all__ = ["main"]

_GRACE_S = 10.0


def main() -> int:
    ui = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL)  # noqa: S603 - our argv
    stopping = threading.Event()

    def stop(*_: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    threading.Thread(target=_wait_for_eof, args=(stop,), daemon=True).start()
    while ui.poll() is None and not stopping.wait(0.5):
        pass
    if ui.poll() is None:
        _stop_group(ui)
    return ui.returncode or 0


def _wait_for_eof(stop: object) -> None:
    with contextlib.suppress(OSError):
        while os.read(0, 1024):
            pass
    stop()  # type: ignore[operator]


def _stop_group(ui: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the UI and its workers (the guard's process group), SIGKILL after a grace."""
    group = os.getpgrp()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the guard outlives its own signal
    _platform.stop_process_group(group)
    deadline = time.monotonic() + _GRACE_S
    while ui.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if ui.poll() is None:
        _platform.stop_process_group(group, force=True)


if __name__ == "__main__":
    sys.exit(main())
