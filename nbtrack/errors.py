"""Every exception and warning nbtrack raises at its users, in one place.

Catch :class:`NbtrackError` for any of nbtrack's own errors, and filter :class:`NbtrackWarning`
to silence (or, in tests, to fail on) what nbtrack could not do as asked. Values that are simply
wrong for a call (a metric that is not a number, a bad metric name) raise the built-in
``TypeError`` and ``ValueError`` with a message that names the value and the fix.
"""

from __future__ import annotations

__all__ = [
    "InvalidRecordError",
    "NbtrackError",
    "NbtrackWarning",
    "NoActiveRunError",
    "NotebookError",
    "RunNotInStoreError",
    "UiStartError",
]


class NbtrackError(Exception):
    """Base class of nbtrack's own exceptions."""


class NbtrackWarning(UserWarning):
    """Something nbtrack could not do as asked; the run goes on."""


class NoActiveRunError(NbtrackError, RuntimeError):
    """``nbtrack.log`` and friends were called outside a tracked cell."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"nbtrack.{what}() was called outside a tracked cell. Start one by putting "
            "`%%track` (after `%load_ext nbtrack` or `import nbtrack`) on the first line of the "
            "cell, e.g. `%%track --experiment my-exp`."
        )


class InvalidRecordError(NbtrackError, ValueError):
    """A record read back from a notebook is not one this nbtrack understands."""


class NotebookError(NbtrackError):
    """A notebook file cannot be read: missing, not JSON, or not a notebook."""


class UiStartError(NbtrackError, RuntimeError):
    """The MLflow UI did not come up; the message carries the end of its log."""


class RunNotInStoreError(NbtrackError, RuntimeError):
    """A call that needs MLflow's client (``log_model``, ``log_dataset``) ran while the tracking
    store had not created the tracked run (unreachable, or slow to answer)."""


class SweepError(NbtrackError, RuntimeError):
    """A sweep (``%%track --sweep``) stopped: a trial failed with ``--stop-on-error``, or
    every trial failed. Its parent run ends FAILED; the trials' runs say why each failed."""
