"""Who the sync process is to a tracking server, and what the server's refusals mean.

Credentials reach a server in one of three ways, all MLflow's own: ``MLFLOW_TRACKING_USERNAME``
and ``MLFLOW_TRACKING_PASSWORD``, a bearer token in ``MLFLOW_TRACKING_TOKEN``, or the user
name and password inside the tracking URI (``http://alice:...@host``). nbtrack writes none of
them anywhere, nor anything derived from them: the journal's ``session.json`` holds the URI
without them, the sync process gets the full URI in its environment (``journal.session``), and
a replay (``nbtrack sync``) uses its own environment's. A kernel whose credentials change (the
variables, or the password inside ``MLFLOW_TRACKING_URI``) restarts its sync process with the
new ones (``fingerprint``, looked at about once a second while runs wait), so that fixing them
in any cell of the notebook is enough.

A server that refuses the credentials (401) or the user (403) is not "down": the message says
which it is, names the user (never the password or the token) and says how to fix it, and the
runs wait in the journal until it is fixed.
"""

from __future__ import annotations

import hashlib
import os
from urllib.parse import unquote, urlsplit

from nbtrack.journal.store_errors import StoreUnavailable

__all__ = [
    "ACCESS_REFUSED",
    "RunRefused",
    "access_problem",
    "fingerprint",
    "identity",
    "raise_refusal",
    "refused_status",
]

_USERNAME = "MLFLOW_TRACKING_USERNAME"
_PASSWORD = "MLFLOW_TRACKING_PASSWORD"  # noqa: S105 - the variable's name, not a password
_TOKEN = "MLFLOW_TRACKING_TOKEN"  # noqa: S105 - the variable's name
_URI = "MLFLOW_TRACKING_URI"
# How every access problem starts, so the kernel words it as a refusal, not an outage.
ACCESS_REFUSED = "refused access"


class RunRefused(Exception):
    """The store refused this run to this user (403): the other runs go on, this one waits."""


# What a call does, for a message that says what the user was not allowed to do.
_DOING = {
    "experiment_id": "read or create this experiment",
    "search_runs": "read this experiment's runs",
    "create_run": "create runs in this experiment",
    "log_batch": "log into this run",
    "log_artifact": "upload this run's artifacts",
    "log_artifacts": "upload this run's artifacts",
    "set_terminated": "end this run",
}


def _user(uri: str) -> str | None:
    """The user name inside ``uri`` (``http://alice:...@host``), if any."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc or parts.username is None:
        return None
    return unquote(parts.username)


def fingerprint(uri: str) -> str:
    """A digest of the credentials this process would use for ``uri`` (kept in memory only):
    when it changes, the sync process is restarted with the new ones."""
    values = [uri, *(os.environ.get(name, "") for name in (_USERNAME, _PASSWORD, _TOKEN, _URI))]
    return hashlib.sha256("\0".join(values).encode()).hexdigest()


def identity(uri: str = "") -> str:
    """Who the server sees, for a message: a user name, the token's variable, or nobody."""
    user = os.environ.get(_USERNAME) or _user(uri)
    if user:
        return f"user {user!r}"
    if os.environ.get(_TOKEN):
        return "the token in MLFLOW_TRACKING_TOKEN"
    return "an anonymous client (no MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN)"


def refused_status(error: BaseException) -> int | None:
    """401 or 403 when ``error`` is the server refusing the credentials or the user."""
    code = getattr(error, "error_code", None)
    if code in ("UNAUTHENTICATED", "UNAUTHORIZED"):
        return 401
    if code == "PERMISSION_DENIED":
        return 403
    status = getattr(getattr(error, "response", None), "status_code", None)
    return status if status in (401, 403) else None


def access_problem(error: BaseException, doing: str, uri: str = "") -> str | None:
    """What to tell the user when ``error`` is the server refusing access (401, 403) while
    ``doing`` something on the store at ``uri`` (the full URI: a user in it is named); None for
    any other error. Never holds a password or token."""
    status = refused_status(error)
    if status is None:
        return None
    who = identity(uri)
    if status == 401:
        return (
            f"{ACCESS_REFUSED}: the tracking server does not accept the credentials of {who} "
            f"(401 Unauthorized). {_where_to_fix(uri)}, in the kernel (os.environ[...] in a "
            "cell will do) or for `nbtrack sync`; until then every run waits in the local "
            "journal, nothing is lost"
        )
    return (
        f"{ACCESS_REFUSED}: {who} is not allowed to {doing} on the tracking server "
        "(403 Permission denied). Ask an admin of the server for permission, or track into an "
        "experiment of your own (%%track --experiment NAME); until then the run waits in the "
        "local journal, nothing is lost"
    )


def _where_to_fix(uri: str) -> str:
    """Which credentials to set, where the refused ones came from: MLflow's variables win over
    a user and password inside the URI, and a token does not replace those."""
    if _user(uri) and not os.environ.get(_USERNAME):
        return (
            f"Set {_URI} to the store's URI with a password that works (or {_USERNAME} and "
            f"{_PASSWORD})"
        )
    return f"Set {_USERNAME} and {_PASSWORD} (or {_TOKEN}) to ones that work"


def raise_refusal(method: str, error: BaseException, experiment: str, uri: str = "") -> None:
    """Raise what a refusal means, if ``error`` (from ``method`` on a run of ``experiment``, in
    the store at ``uri``) is one: StoreUnavailable for refused credentials (401: every run
    waits), RunRefused for a refused user (403: this run waits, the others go on). Anything
    else: return."""
    status = refused_status(error)
    if status is None:
        return
    doing = f"{_DOING.get(method, method)} (experiment {experiment!r})"
    problem = str(access_problem(error, doing, uri))
    if status == 403:
        raise RunRefused(problem) from error
    raise StoreUnavailable(problem, access=True) from error
