"""``nbtrack sync``: upload what dead kernels left in their journals, and end those runs FAILED."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from nbtrack._files import PrivateFolderError
from nbtrack._settings import settings
from nbtrack.journal.folders import spool_root

__all__ = ["main"]

_LONGEST_PAUSE_S = 5.0


class _OneLine(logging.Formatter):
    """The sync log at a terminal: each message on its line, never a traceback (the sync
    process's own log, ``worker.log``, keeps those)."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(
            logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        )


def main(spool_dir: str | None) -> int:
    """Replay every orphaned session folder; print one line per folder, and one per folder not
    replayed because another user could have put it there. Exit code 0 on success, 1 when
    something is kept for a later try (store unreachable, it refused a run, credentials
    missing), the spool folder itself is not private, or there is none (no home folder)."""
    # Our own retries (with backoff) decide when to give up, not MLflow's long HTTP retry loop.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    from nbtrack.journal.worker import recover_orphans

    try:
        root = Path(spool_dir).expanduser() if spool_dir else spool_root()
    except PrivateFolderError as error:  # no home folder: say where to look instead
        print(f"nbtrack sync: {error}; or name the folder with --spool-dir", file=sys.stderr)
        return 1
    except (RuntimeError, KeyError):  # ~user of a user that does not exist
        print(
            f"nbtrack sync: --spool-dir {spool_dir!r}: no such user's home folder", file=sys.stderr
        )
        return 1
    # Someone waits at a terminal: retry an unreachable store often, then give up.
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setFormatter(_OneLine("%(message)s"))
    sync_log = logging.getLogger("nbtrack.sync")
    sync_log.addHandler(terminal)
    try:
        done = recover_orphans(
            None, give_up_after_s=settings().sync_timeout, root=root, longest_pause=_LONGEST_PAUSE_S
        )
    finally:
        sync_log.removeHandler(terminal)
    if not done:
        print(f"nbtrack sync: nothing to recover in {root}")
        return 0
    for line in done:
        print(f"nbtrack sync: {line}")
    return (
        1
        if any("kept for a later" in line or line.startswith("nothing in ") for line in done)
        else 0
    )
