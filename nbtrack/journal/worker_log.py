"""The sync process's own log (``worker.log``): whatever it prints or logs (its own records,
MLflow's, a crash's traceback), with no credential in any line."""

from __future__ import annotations

import io
import logging
import sys
from typing import Any

from nbtrack._redact import redact_text

__all__ = ["configure_logging"]

log = logging.getLogger("nbtrack.sync")


class _RedactingStream(io.TextIOBase):
    """What MLflow (or anything else) prints to this process's stdout/stderr, which is the
    worker log, with credentials removed: no line of the log may hold one."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def write(self, text: str) -> int:
        self._raw.write(redact_text(text))
        self._raw.flush()
        return len(text)

    def flush(self) -> None:
        self._raw.flush()


class _RedactingFormatter(logging.Formatter):
    """No log line carries a credential (a store URI with a password, a token in an error)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def configure_logging() -> None:
    """The sync process's stdout, stderr and log records, redacted, into ``worker.log``."""
    sys.stdout = _RedactingStream(sys.stdout)
    sys.stderr = _RedactingStream(sys.stderr)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)

    def excepthook(kind: type[BaseException], error: BaseException, tb: Any) -> None:
        log.critical("sync process crashed", exc_info=(kind, error, tb))

    sys.excepthook = excepthook
