"""A sweep shared by two kernels through an Optuna storage on PostgreSQL (Debian's packages):
every planned trial runs once, in one kernel or the other, and all nest under one parent run."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from helpers.kernels import Kernel

pytestmark = pytest.mark.server

CELL = (
    '%%track -e shared -n {name} --sweep "x=uniform(0, 1)" --trials 8 --sweep-metric loss '
    "--study shared-study --storage {storage} --seed {seed}\n"
    "import time\nx = 0.5\n"
    "for i in range(4):\n"
    "    nbtrack.log(loss=(x - 0.3) ** 2 + 1 / (i + 1))\n"
    "    time.sleep(0.2)\n"
)


def test_two_kernels_share_a_study_without_running_a_trial_twice(store, client, tmp_path: Path):
    import optuna
    from helpers.servers import Database

    postgres = Database(tmp_path / "postgres")
    kernels: list[Kernel] = []
    try:
        kernels = [Kernel(tmp_path), Kernel(tmp_path)]
        for k in kernels:
            reply, _ = k.run("import nbtrack")
            assert reply["status"] == "ok"
        ids = [
            k.submit(CELL.format(name=f"k{i}", storage=postgres.uri, seed=i))
            for i, k in enumerate(kernels)
        ]
        replies = [
            k.wait_reply(msg_id, timeout=400) for k, msg_id in zip(kernels, ids, strict=True)
        ]
        assert [r["status"] for r in replies] == ["ok", "ok"], replies
        for k in kernels:
            k.run("nbtrack.wait(60)")
        study = optuna.load_study(study_name="shared-study", storage=postgres.uri)
        run_trials = [t for t in study.trials if not t.user_attrs.get("nbtrack.surplus")]
        assert sorted(t.number for t in run_trials) == list(range(8))
        assert all(t.state.name == "COMPLETE" for t in run_trials)
    finally:
        for k in kernels:
            k.shutdown()
        postgres.stop()

    runs = client.search_runs([client.get_experiment_by_name("shared").experiment_id])
    parents = [r for r in runs if "nbtrack.trial" not in r.data.tags]
    trials = [r for r in runs if "nbtrack.trial" in r.data.tags]
    assert len(parents) == 1  # the kernel that created the study created the parent
    (parent,) = parents
    assert parent.data.tags["nbtrack.study"] == "shared-study"
    numbers = Counter(r.data.tags["nbtrack.trial"] for r in trials)
    assert numbers == Counter(str(n) for n in range(8))  # every trial once, none twice
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parent.info.run_id}
    kernels_used = {r.data.tags["nbtrack.kernel_session"] for r in trials}
    assert len(kernels_used) == 2  # both kernels ran trials
