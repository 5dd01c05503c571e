"""Fixtures of the tests against an authenticated team server (test_team_auth,
test_team_credentials): one stack for both modules, since starting it (PostgreSQL, its
migrations, MLflow's auth app) is most of a test's time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from helpers.servers import AuthStack, forget_experiments, signed_in, start_stack, stop_stack


@pytest.fixture(scope="session")
def auth_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthStack]:
    """The README's team stack with ``--auth``: two users besides the admin, alice and bob.
    Tests add tokens but change no user or password, and each one's experiments go after it
    (``admin``)."""
    stack = start_stack(tmp_path_factory.mktemp("auth-team"), workers=2, auth=True)
    try:
        passwords = {name: stack.add_user(name) for name in ("alice", "bob")}
        yield AuthStack(stack, {"admin": stack.admin_password(), **passwords})
    finally:
        stop_stack(stack)


@pytest.fixture
def admin(auth_stack: AuthStack) -> Iterator[Any]:
    client = signed_in(auth_stack, "admin")
    yield client
    forget_experiments(client)
