"""Several kernels in one folder share MLflow's default SQLite store: started at once on a store
that does not exist yet, they create it once, then track into that one ``mlflow.db`` together,
and every point arrives exactly once. (One test for both: the upload into the shared file is
the same whether the store was just created or already there, and four kernels logging 20k
steps x 3 metrics each cost the suite about a minute.)"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers.kernels import Kernel, output_text

# `load`: run before the rest (tests/conftest.py).
pytestmark = [pytest.mark.kernel, pytest.mark.load]

KERNELS = 4
STEPS = 20_000
# What a user must never see from nbtrack: the store's first-use races, SQLite's one writer at a
# time (the sync processes wait their turn, quietly), and raw tracebacks.
STORE_RACES = ("locked", "not reachable", "duplicate column", "_alembic_tmp", "alembic", "migrat")


def _run_everywhere(kernels: list[Kernel], code: str, timeout: float = 600) -> list[str]:
    """Submit ``code`` to every kernel at once; each kernel's printed text once all answered."""
    msg_ids = [kernel.submit(code) for kernel in kernels]
    texts = []
    for kernel, msg_id in zip(kernels, msg_ids, strict=True):
        reply = kernel.wait_reply(msg_id, timeout)
        text = output_text(kernel.outputs(msg_id))
        assert reply["status"] == "ok", text
        texts.append(text)
    return texts


def test_four_kernels_create_and_share_one_sqlite_store_every_point_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four kernels start together in one folder without ``mlflow.db``, load nbtrack at the
    same moment and log 20k steps x 3 metrics each into it: MLflow's default store is created
    once (its first creation is serialised across processes), every point is stored exactly
    once, no run stays RUNNING, ``nbtrack.wait()`` is True, nothing about the store's creation
    or its lock reaches the user, each kernel started its sync process once (no crash loop),
    and ``nbtrack sync`` afterwards finds nothing to do and says so."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("NBTRACK_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "mlflow.db"
    assert not store.exists()

    with ThreadPoolExecutor(KERNELS) as pool:
        kernels = list(pool.map(lambda _: Kernel(tmp_path), range(KERNELS)))
    try:
        seen = _run_everywhere(kernels, "%load_ext nbtrack")
        seen += _run_everywhere(
            kernels,
            "%%track -e race\n"
            f"for step in range({STEPS}):\n"
            "    nbtrack.log(a=float(step), b=1.0, c=2.0)",
        )
        waited = _run_everywhere(
            kernels,
            "from nbtrack.journal import session\n"
            "print('stored', nbtrack.wait(300))\n"
            "print('sync processes started', sum(s.worker_starts for s in "
            "session._sessions.values()))",
        )
    finally:
        for kernel in kernels:
            kernel.shutdown()
    for text in waited:
        assert "stored True" in text
        assert "sync processes started 1" in text
    shown = "\n".join(seen + waited)
    for race in STORE_RACES:
        assert race not in shown.lower(), shown
    assert "Traceback" not in shown

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("race")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == KERNELS
    for run in runs:
        assert run.info.status == "FINISHED"
        for key in ("a", "b", "c"):
            history = client.get_metric_history(run.info.run_id, key)
            assert sorted(m.step for m in history) == list(range(STEPS)), key
        assert [m.value for m in client.get_metric_history(run.info.run_id, "a")][:3] == [
            0.0,
            1.0,
            2.0,
        ]

    replay = subprocess.run(
        [sys.executable, "-m", "nbtrack", "sync"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert replay.returncode == 0, replay.stderr
    assert "Traceback" not in replay.stdout + replay.stderr
    assert "nothing to recover" in replay.stdout
