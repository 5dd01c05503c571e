"""How the sync process tells store errors apart, and what it keeps of what a store refused.

An error is *permanent* when no retry will fix it (MLflow says the request itself is wrong):
the request is kept, with the reason, in ``<spool root>/rejected/`` instead of being dropped.
Anything else (connection refused, a 5xx, a locked SQLite file) is ``StoreUnavailable``, and
retried. Every message is one line with no credentials (``error_line``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from nbtrack._files import make_private_dir, open_private
from nbtrack._redact import redact_text

__all__ = ["StoreUnavailable", "error_line", "keep_rejected", "permanent"]

log = logging.getLogger("nbtrack.sync")

# MLflow error codes that no retry will fix; anything else (connection refused, 5xx, a locked
# SQLite file) is worth retrying.
_PERMANENT_ERRORS = frozenset(
    {
        "INVALID_PARAMETER_VALUE",
        "RESOURCE_DOES_NOT_EXIST",
        "INVALID_STATE",
        "BAD_REQUEST",
        "RESOURCE_ALREADY_EXISTS",
    }
)


class StoreUnavailable(Exception):
    """The store did not accept a request; retry later. The message holds no credentials.
    ``access``: it refused the credentials (401), which no quick retry will fix
    (``nbtrack.journal.access``)."""

    def __init__(self, message: str, access: bool = False) -> None:
        super().__init__(message)
        self.access = access


def permanent(error: Exception) -> bool:
    """Whether no retry can make the store accept the request that raised ``error``."""
    return getattr(error, "error_code", None) in _PERMANENT_ERRORS


def error_line(error: BaseException) -> str:
    """An error as one line for a log or a message: no credentials, no multi-line dumps."""
    text = (
        f"{type(error).__name__}: {error}".splitlines()[0] if str(error) else type(error).__name__
    )
    return redact_text(text)[:500]


def keep_rejected(spool: Path, method: str, args: Any, kwargs: Any, error: Exception) -> None:
    """Keep what the store refused for good for ``spool``'s run, with the reason, instead of
    dropping it."""
    rejected = make_private_dir(spool.parent.parent / "rejected")
    with open_private(rejected / f"{spool.parent.name}-{spool.stem}.rejected", "a") as out:
        out.write(f"{time.time():.3f} {method} refused: {error_line(error)}\n")
        out.write(f"  args={args!r:.2000}\n  kwargs={kwargs!r:.100000}\n")
    log.error(
        "store refused %s for %s: %s (kept in %s)", method, spool.stem, error_line(error), rejected
    )
