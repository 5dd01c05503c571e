"""``nbtrack ui``: an MLflow UI for a store, in the foreground until Ctrl-C."""

from __future__ import annotations

import signal
import sys
import time

from nbtrack._redact import strip_uri_credentials
from nbtrack.errors import UiStartError
from nbtrack.tracking import resolve_uri
from nbtrack.ui.process import ensure_ui, find_ui, pid_alive, stop_ui

__all__ = ["main"]


def main(tracking_uri: str | None, wait: bool) -> int:
    """``nbtrack ui``: print the address of an MLflow UI for the store; with ``wait`` keep the
    command in the foreground until Ctrl-C, then stop the UI if this command started it."""
    uri = resolve_uri(tracking_uri)
    try:
        already = find_ui(uri)
        # In the foreground the UI lives as long as this command; with --no-wait on its own.
        ui = already or ensure_ui(uri, owned=wait)
    except UiStartError as exc:
        print(f"nbtrack ui: {exc}", file=sys.stderr)
        return 1
    print(ui.url, flush=True)
    if not wait:
        return 0
    print(
        f"MLflow UI for {strip_uri_credentials(uri)} (pid {ui.pid}); press Ctrl-C to stop it.",
        file=sys.stderr,
        flush=True,
    )
    # `kill` (a closing terminal, a process manager) should stop the UI like Ctrl-C does.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        while pid_alive(ui.pid):
            time.sleep(1.0)
    except KeyboardInterrupt:
        # A UI that was already running belongs to someone else (a kernel, another shell):
        # leave it; stop only the one this command started.
        if already is None:
            stop_ui(uri)
        return 0
    print(f"nbtrack ui: the MLflow UI exited; its log is {ui.log_path}", file=sys.stderr)
    return 1


def _raise_keyboard_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt
