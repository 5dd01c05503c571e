"""nbtrack.runs() on an experiment of 500 runs, against MLflow's own ways to list them.

    python benchmarks/bench_runs.py [--runs 500]

Fills a fresh SQLite store with N runs (4 params, 3 metrics of 100 points each, and the best
values tag nbtrack writes when a cell ends), then times: ``nbtrack.runs()`` (one search call),
``mlflow.search_runs()`` (MLflow's DataFrame, last values only), and a loop of
``MlflowClient.get_run`` per run (what listing run by run would cost).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from _common import fmt, isolate, median, table


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=500)
    args = parser.parse_args()
    folder = isolate("runs")
    uri = f"sqlite:///{folder / 'mlflow.db'}"

    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(uri)
    experiment = client.create_experiment("bench-runs")
    t0 = int(time.time() * 1000)
    print(f"logging {args.runs} runs ...", flush=True)
    for i in range(args.runs):
        run_id = client.create_run(
            experiment,
            run_name=f"run-{i}",
            start_time=t0 + i,
            tags={"nbtrack.best": json.dumps({"loss": [0.1, 90], "acc": [0.9, 90]})},
        ).info.run_id
        metrics = [
            Metric(name, value / (s + 1), t0 + s, s)
            for s in range(100)
            for name, value in (("loss", 1.0), ("acc", 0.5), ("lr", 0.001))
        ]
        params = [
            Param(k, str(v)) for k, v in (("lr", i), ("hidden", 64), ("epochs", 5), ("opt", "adam"))
        ]
        client.log_batch(run_id, metrics=metrics, params=params)
        client.set_terminated(run_id, end_time=t0 + 60_000)

    import mlflow

    import nbtrack

    def timed(action: object, repeat: int = 3) -> float:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            action()  # type: ignore[operator]
            times.append(time.perf_counter() - start)
        return median(times) * 1000

    ids = [r.info.run_id for r in client.search_runs([experiment], max_results=args.runs)]
    ours = timed(lambda: nbtrack.runs("bench-runs", store=uri))
    theirs = timed(lambda: mlflow.search_runs([experiment], max_results=args.runs))
    per_run = timed(lambda: [client.get_run(i) for i in ids], repeat=1)
    rows = [
        ["nbtrack.runs() (last and best values)", fmt(ours), "1.00x"],
        ["mlflow.search_runs() (last values only)", fmt(theirs), f"{theirs / ours:.2f}x"],
        ["MlflowClient.get_run per run", fmt(per_run), f"{per_run / ours:.2f}x"],
    ]
    print(table([f"list {args.runs} runs", "ms", "vs nbtrack.runs"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
