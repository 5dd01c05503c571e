"""``nbtrack sync``: upload what dead kernels left in their journals, and end those runs FAILED."""

from __future__ import annotations

import os

from nbtrack._settings import settings
from nbtrack.journal.folders import spool_root

__all__ = ["main"]


def main(spool_dir: str | None) -> int:
    """Replay every orphaned session folder; print one line per folder. Exit code 0 on success,
    1 when something is kept for a later try (store unreachable, or it refused a run)."""
    if spool_dir:
        os.environ["NBTRACK_SPOOL_DIR"] = spool_dir
    # Our own retries (with backoff) decide when to give up, not MLflow's long HTTP retry loop.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("NBTRACK_RETRY_MAX_S", "5")
    from nbtrack.journal.worker import recover_orphans

    root = spool_root()
    done = recover_orphans(None, give_up_after_s=settings().sync_timeout)
    if not done:
        print(f"nbtrack sync: nothing to recover in {root}")
        return 0
    for line in done:
        print(f"nbtrack sync: {line}")
    return 1 if any("kept for a later" in line for line in done) else 0
