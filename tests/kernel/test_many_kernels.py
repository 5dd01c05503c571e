"""Several notebooks in one folder share MLflow's default SQLite store: four kernels track into
one ``mlflow.db`` at once, and every point arrives exactly once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers.load import assert_every_point_once, kernels, track_at_once, wait_stored

# `load`: run before the rest (tests/conftest.py).
pytestmark = [pytest.mark.kernel, pytest.mark.load]

STEPS = 20_000


def test_four_kernels_share_one_sqlite_file_every_point_once(
    store: str, client: Any, tmp_path: Path
) -> None:
    client.search_experiments()  # the store exists: this is the steady state, not its creation
    with kernels(tmp_path, 4) as started:
        shown = track_at_once(started, tmp_path, "shared", STEPS)
        shown += wait_stored(started)
    # SQLite lets one writer in at a time: the sync processes wait their turn, quietly.
    assert not [text for text in shown if "locked" in text or "not reachable" in text], shown
    assert_every_point_once(client, "shared", 4, STEPS)
