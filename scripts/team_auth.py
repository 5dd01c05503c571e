"""MLflow's basic-auth app, also accepting bearer tokens (``MLFLOW_TRACKING_TOKEN``).

Loaded by ``mlflow server --app-name basic-auth`` through the ``authorization_function`` setting
of its auth config (``team_stack.py`` writes ``authorization_function = team_auth:authenticate``).
A ``Basic`` header goes to MLflow's own check; a ``Bearer`` token is looked up by its SHA-256 in
the file ``$TEAM_STACK_TOKENS`` (written by ``team_stack.py token``), which maps it to a user of
the auth app, whose permissions then apply as if that user had logged in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any

from flask import request
from mlflow.server.auth import authenticate_request_basic_auth, make_basic_auth_response
from werkzeug.datastructures import Authorization


def _user_of(token: str) -> str | None:
    path = os.environ.get("TEAM_STACK_TOKENS")
    if not path:
        return None
    try:
        with open(path) as handle:
            tokens: dict[str, str] = json.load(handle)
    except (OSError, ValueError):
        return None
    digest = hashlib.sha256(token.encode()).hexdigest()
    for known, user in tokens.items():
        if hmac.compare_digest(known, digest):
            return user
    return None


def authenticate() -> Any:
    """An ``Authorization`` naming the user, or MLflow's 401 response."""
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials:
        user = _user_of(credentials.strip())
        if user is None:
            return make_basic_auth_response()
        return Authorization("basic", {"username": user})
    return authenticate_request_basic_auth()
