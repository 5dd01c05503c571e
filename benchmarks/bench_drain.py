"""How fast the sync process empties the spool into SQLite, and how long a backlog takes to drain.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_drain.py [--sizes 10000 30000 100000]

Each size is one ``%%track`` cell that logs that many points (three metrics per step) as fast
as it can, so nearly all of them are still to upload when the cell's body ends. The cell's end
does not wait for the upload (``NBTRACK_END_WAIT=0``, as where a person watches); the drain time
runs from the body's end to ``nbtrack.wait()`` returning, the cell's own end included; points/s
is size / drain time. Every run is read
back through ``MlflowClient`` to check that all its points were stored. For comparison the
same run times ``MlflowClient.log_batch`` of 1000 points called directly, which is the
work the sync process does per batch. About a minute with the defaults.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Shell, isolate, table

LOG_CELL = """
from time import perf_counter as _perf_counter
_run_id = nbtrack.active_run().run_id  # waits until the sync process created the run
for _i in range({steps}):
    nbtrack.log(loss=1.0 / (_i + 1), acc=0.5, lr=0.001)
_body_end = _perf_counter()
"""


def direct_log_batch_rate(points: int = 5_000) -> float:
    """Points/s of ``MlflowClient.log_batch`` (1000 per call) into the same store, in-process."""
    import mlflow
    from mlflow.entities import Metric

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("bench-drain")
    assert experiment is not None
    run_id = client.create_run(experiment.experiment_id, run_name="direct log_batch").info.run_id
    now = int(time.time() * 1000)
    keys = ("loss", "acc", "lr")
    client.log_batch(run_id, metrics=[Metric(k, 0.5, now, 0) for k in keys])  # creates the rows
    batches = max(1, points // 999)
    start = time.perf_counter()
    for batch in range(batches):
        steps = range(batch * 333 + 1, (batch + 1) * 333 + 1)
        client.log_batch(run_id, metrics=[Metric(k, 0.5, now, s) for s in steps for k in keys])
    elapsed = time.perf_counter() - start
    client.set_terminated(run_id)
    return batches * 999 / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000], help="points per run"
    )
    args = parser.parse_args()

    isolate("drain")
    # The cell's end returns at once (as where a person watches); nbtrack.wait() then drains.
    os.environ["NBTRACK_END_WAIT"] = "0"
    shell = Shell()
    # A first tracked cell imports MLflow, creates the store and starts the sync process.
    shell.run("nbtrack.log(warm=1.0)", track="-e bench-drain -n warm-up")
    import mlflow

    import nbtrack

    nbtrack.wait(60)
    reference = direct_log_batch_rate()
    client = mlflow.MlflowClient()

    rows = []
    first_per_point = None
    for size in args.sizes:
        steps = size // 3
        shell.run(LOG_CELL.format(steps=steps), track=f"-e bench-drain -n drain-{size}")
        cell_returned = time.perf_counter()
        nbtrack.wait()
        done = time.perf_counter()
        body_end = shell["_body_end"]
        run_id = shell["_run_id"]
        stored = sum(len(client.get_metric_history(run_id, key)) for key in ("loss", "acc", "lr"))
        if stored != 3 * steps:
            msg = f"run {run_id} has {stored} points stored, {3 * steps} were logged"
            raise RuntimeError(msg)
        drain_s = done - body_end
        per_point = drain_s / stored
        first_per_point = first_per_point or per_point
        rows.append(
            [
                f"{stored:,}",
                f"{cell_returned - body_end:.2f}",
                f"{drain_s:.2f}",
                f"{stored / drain_s:,.0f}",
                f"{per_point * 1e6:.0f}",
                f"{per_point / first_per_point:.2f}",
            ]
        )
    print(
        table(
            [
                "points",
                "cell end s",
                "drain s",
                "points/s",
                "µs/point",
                "µs/point vs first",
            ],
            rows,
        )
    )
    print()
    print(
        f"direct MlflowClient.log_batch (1000 per call) into the same store: "
        f"{reference:,.0f} points/s ({1e6 / reference:.0f} µs/point), the same work done in-process"
    )
    print(
        "drain s: from the end of the cell's body to nbtrack.wait() returning; "
        "cell end s: the part of it spent in the cell's own end (NBTRACK_END_WAIT=0: no wait)"
    )


if __name__ == "__main__":
    main()
