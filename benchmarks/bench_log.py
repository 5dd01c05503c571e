"""Cost of logging one metric point: nbtrack.log against MLflow's own ways of logging.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_log.py

Everything is measured in this one run, three metrics per step, and printed as µs per metric
point with the ratio to ``nbtrack.log``. nbtrack runs inside real ``%%track`` cells; its cost is
split in two: the call (what the training loop pays, with keywords or with a mapping) and the
sender thread's work per point (grouping, reading device tensors, curves, the journal line),
which runs every 0.5 s in the kernel. The upload itself happens in the sync process, outside
the kernel (see bench_drain.py). The floor is a timestamped tuple of the three values appended
to a list. MLflow's variants log into the same SQLite store. About 30 s in all.

In a tight loop the caches stay warm, so these figures are far below what a call costs inside
a training loop: bench_loop.py measures that.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Shell, fmt, isolate, median, table

METRICS = ("loss", "acc", "lr")
# Fast variants: CHUNKS x CALLS log calls per round, ROUNDS rounds, median round reported. A
# chunk is what a 4k-steps/s loop buffers between two sender wake-ups (0.5 s).
CHUNKS, CALLS, ROUNDS = 100, 2_000, 3
# nbtrack's sender: batches of this many calls (3 points each), timed one drain at a time.
DRAIN_CALLS, DRAIN_BATCHES = 1_000, 20
# Slow variants (MLflow per-call logging): steps of three points.
SLOW_STEPS, BUFFERED_STEPS, BATCH_POINTS = 70, 300, 6_000

# Runs inside the shell: loops written once, used for nbtrack and for the list floor alike.
SETUP_CELL = """
import os, time
from time import perf_counter as _perf_counter
from nbtrack import _buffer as _nbtrack_buffer
from nbtrack import _registry as _nbtrack_registry
from nbtrack import _sender as _nbtrack_sender

def _time_calls(log, chunks, calls, loss):
    # One chunk of `calls` log calls is timed at a time; emptying the buffer between chunks
    # (as the sender does every 0.5 s) is not part of the hot path and is left out.
    buffer = _nbtrack_buffer.active.calls
    total = 0.0
    for _ in range(chunks):
        start = _perf_counter()
        for _ in range(calls):
            log(loss=loss, acc=0.5, lr=0.001)
        total += _perf_counter() - start
        del buffer[:]
    return total

def _time_mapping_calls(log, chunks, calls, loss):
    buffer = _nbtrack_buffer.active.calls
    total = 0.0
    for _ in range(chunks):
        start = _perf_counter()
        for _ in range(calls):
            log({"loss": loss, "acc": 0.5, "lr": 0.001})
        total += _perf_counter() - start
        del buffer[:]
    return total

def _time_appends(chunks, calls, loss):
    # The floor: a timestamped tuple of the three values appended to a list.
    total = 0.0
    for _ in range(chunks):
        buffer = []
        append = buffer.append
        now = time.time
        start = _perf_counter()
        for _ in range(calls):
            append((None, now(), {"loss": loss, "acc": 0.5, "lr": 0.001}))
        total += _perf_counter() - start
    return total

def _time_drains(log, batches, calls, loss):
    tracked = _nbtrack_registry.current()
    times = []
    for _ in range(batches):
        for _ in range(calls):
            log(loss=loss, acc=0.5, lr=0.001)
        start = _perf_counter()
        _nbtrack_sender.drain(tracked)
        times.append(_perf_counter() - start)
    return times

def _park_sender(seconds):
    # The sender would drain the buffer while it is being timed; the benchmark times its
    # work separately. The interval is read at each wake, so it applies after this one.
    os.environ["NBTRACK_FLUSH_INTERVAL"] = str(seconds)
    _nbtrack_sender.ensure_sender().wake()
    time.sleep(0.3)
"""

MEASURE_CELL = """
_park_sender(3600.0)
_loss = {loss}
_log_s = [_time_calls(nbtrack.log, {chunks}, {calls}, _loss) for _ in range({rounds})]
_map_s = [_time_mapping_calls(nbtrack.log, {chunks}, {calls}, _loss) for _ in range({rounds})]
_drain_s = _time_drains(nbtrack.log, {batches}, {drain_calls}, _loss)
_park_sender(0.5)
"""


def nbtrack_rows(shell: Shell) -> dict[str, tuple[float, int]]:
    """µs per point (and points measured) of nbtrack's hot path, its sender and the floor."""
    shell.run(SETUP_CELL)
    points = CHUNKS * CALLS * len(METRICS)
    drain_points = DRAIN_BATCHES * DRAIN_CALLS * len(METRICS)
    rows: dict[str, tuple[float, int]] = {}
    rounds = [shell["_time_appends"](CHUNKS, CALLS, 0.25) / points * 1e6 for _ in range(ROUNDS)]
    rows["floor: timestamped tuple of the 3 values appended"] = (median(rounds), points)
    for label, loss in (("floats", "0.25"), ("loss as 0-d tensor", "_loss_tensor")):
        # A real loss: a 0-d tensor still attached to its autograd graph.
        shell.run("import torch\n_loss_tensor = torch.ones((), requires_grad=True) * 0.25")
        shell.run(
            MEASURE_CELL.format(
                loss=loss,
                chunks=CHUNKS,
                calls=CALLS,
                rounds=ROUNDS,
                batches=DRAIN_BATCHES,
                drain_calls=DRAIN_CALLS,
            ),
            track=f"-e bench-log -n nbtrack-{label.replace(' ', '-')}",
        )
        log_us = median(shell["_log_s"]) / points * 1e6
        rows[f"nbtrack.log(loss=, acc=, lr=), {label}"] = (log_us, points)
        map_us = median(shell["_map_s"]) / points * 1e6
        rows[f"nbtrack.log({{...}}) (a mapping), {label}"] = (map_us, points)
        # The median batch: a batch that a busy machine preempted says nothing about nbtrack.
        drain_us = median(shell["_drain_s"]) / (DRAIN_CALLS * len(METRICS)) * 1e6
        rows[f"nbtrack sender per point, {label}"] = (drain_us, drain_points)
        rows[f"nbtrack in the kernel (log + sender), {label}"] = (log_us + drain_us, points)
    return rows


def _timed(fn: Any, points: int) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) / points * 1e6


def mlflow_rows() -> dict[str, tuple[float, int]]:
    import mlflow
    from mlflow.entities import Metric

    mlflow.set_experiment("bench-log-mlflow")
    rows: dict[str, tuple[float, int]] = {}

    def per_metric(steps: int, synchronous: bool = True) -> None:
        for i in range(steps):
            mlflow.log_metric("loss", 0.25, step=i, synchronous=synchronous)
            mlflow.log_metric("acc", 0.5, step=i, synchronous=synchronous)
            mlflow.log_metric("lr", 0.001, step=i, synchronous=synchronous)

    def warm(synchronous: bool = True) -> None:
        # The first points of a run create its metric rows; keep that out of the timing.
        per_metric(2, synchronous)
        if not synchronous:
            mlflow.flush_async_logging()

    points = SLOW_STEPS * len(METRICS)
    with mlflow.start_run(run_name="log_metric"):
        warm()
        rows["mlflow.log_metric, synchronous"] = (
            _timed(lambda: per_metric(SLOW_STEPS), points),
            points,
        )
    with mlflow.start_run(run_name="log_metrics"):
        warm()
        rows["mlflow.log_metrics (3 per call), synchronous"] = (
            _timed(
                lambda: [
                    mlflow.log_metrics({"loss": 0.25, "acc": 0.5, "lr": 0.001}, step=i)
                    for i in range(SLOW_STEPS)
                ],
                points,
            ),
            points,
        )

    for buffering, steps in ((None, SLOW_STEPS), ("1", BUFFERED_STEPS)):
        if buffering is None:
            os.environ.pop("MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS", None)
            label = "mlflow.log_metric async"
        else:
            # Read by MLflow's logging thread on each round, so setting it here takes effect.
            os.environ["MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS"] = buffering
            label = "mlflow.log_metric async, buffering 1 s"
        points = steps * len(METRICS)
        with mlflow.start_run(run_name=label):
            warm(synchronous=False)
            start = time.perf_counter()
            per_metric(steps, synchronous=False)
            calls_s = time.perf_counter() - start
            mlflow.flush_async_logging()
            total_s = time.perf_counter() - start
        rows[f"{label}: the calls only"] = (calls_s / points * 1e6, points)
        rows[f"{label}: incl. final flush"] = (total_s / points * 1e6, points)
    os.environ.pop("MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS", None)

    client = mlflow.MlflowClient()
    with mlflow.start_run(run_name="log_batch") as run:
        run_id = run.info.run_id
        warm()

        def batches() -> None:
            now = int(time.time() * 1000)
            buffered = []
            for i in range(BATCH_POINTS // len(METRICS)):
                buffered += [Metric(key, 0.5, now, i) for key in METRICS]
                if len(buffered) >= 1000:
                    client.log_batch(run_id, metrics=buffered)
                    buffered = []
            if buffered:
                client.log_batch(run_id, metrics=buffered)

        rows["MlflowClient.log_batch, 1000 per call"] = (
            _timed(batches, BATCH_POINTS),
            BATCH_POINTS,
        )
    return rows


def main() -> None:
    isolate("log")
    shell = Shell()
    # A first tracked cell imports MLflow, creates the store and starts the sync process, so
    # that none of it is timed below.
    shell.run("nbtrack.log(warm=1.0)", track="-e bench-log -n warm-up")
    import nbtrack

    nbtrack.wait(60)
    rows = mlflow_rows()
    rows.update(nbtrack_rows(shell))

    reference = rows["nbtrack.log(loss=, acc=, lr=), floats"][0]
    order = sorted(rows, key=lambda label: rows[label][0])
    print(
        table(
            ["way of logging (3 metrics per step)", "µs/point", "x nbtrack.log", "points timed"],
            [
                [label, fmt(rows[label][0]), fmt(rows[label][0] / reference), f"{rows[label][1]:,}"]
                for label in order
            ],
        )
    )
    sync = rows["mlflow.log_metric, synchronous"][0]
    kernel = rows["nbtrack in the kernel (log + sender), floats"][0]
    print()
    floor = rows["floor: timestamped tuple of the 3 values appended"][0]
    print(
        f"nbtrack.log: {reference:.3f} µs/point (target < 1 µs), {reference / floor:.2f}x the "
        "floor in this tight loop (bench_loop.py measures it inside a training loop)"
    )
    print(
        f"synchronous mlflow.log_metric / nbtrack.log: {sync / reference:,.0f}x "
        f"(target >= 1000x); / nbtrack in the kernel incl. sender: {sync / kernel:,.0f}x"
    )


if __name__ == "__main__":
    main()
