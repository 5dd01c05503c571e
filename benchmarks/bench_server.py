"""Several kernels tracking into one store: points/s, lag from `log` to visible in MLflow, drain.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_server.py [--quick] [--stores sqlite server]

The team server is the README's (``scripts/team_stack.py``: PostgreSQL, ``mlflow server`` with
``--workers``, proxied artifacts), started in a temporary folder; the SQLite store is MLflow's
default ``mlflow.db``. Each "kernel" is a separate process running a real IPython shell with
nbtrack loaded (``_common.Shell``) and one ``%%track`` cell that logs three metrics per step
at a steady rate, then ``nbtrack.wait()``, as a notebook would. The cell does not wait for the
upload at its end (``NBTRACK_END_WAIT=0``, as where a person watches).

- **lag**: the ``loss`` metric's value is the time it was logged, so the newest value MLflow
  shows for a run (``MlflowClient.get_run``, polled twice a second while the cell logs, as
  the MLflow UI would) tells how old the freshest visible point is. Median and 95th
  percentile over the cell's run, per kernel; the first sample is taken once the run exists.
- **run visible**: from the cell's start to the run existing in MLflow (its id known).
- **points/s**: all points of all kernels / (first `log` to the last kernel's `nbtrack.wait()`).
- **drain**: from a kernel's cell end to its `nbtrack.wait()` returning (what is still to
  upload then).

Three tables: one kernel at bench_loop's rate (4,400 points/s), auto pacing against the
former fixed 5 % share; 1, 2, 4 and 8 kernels at once; one kernel logging 10k, 30k and 100k
points as fast as it can. Each for SQLite and for the server, side by side. A few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "scripts"))

from _common import table  # noqa: E402

# The cell each kernel runs: `rate` points/s (three metrics per step) for `steps` steps, or
# as fast as it can with rate 0; `loss` is the time of the call.
CELL = """
import time as _t, json as _json, sys as _sys
_start = _t.time()
_run_id = None
while _run_id is None:  # waits for the sync process to create the run (a cold one: seconds)
    _run_id = nbtrack.active_run().run_id
_visible = _t.time()
_line = _json.dumps({{"run_id": _run_id, "start": _start, "visible": _visible}})
_sys.__stdout__.write(_line + "\\n")  # past the shell's output capture, to the benchmark
_sys.__stdout__.flush()
_every = 3 * {chunk} / {rate} if {rate} else 0.0
for _step in range({steps}):
    nbtrack.log(loss=_t.time(), acc=0.5, lr=0.001)
    if _every and _step % {chunk} == {chunk} - 1:
        _late = _start + (_step + 1) / {chunk} * _every - _t.time()
        if _late > 0:
            _t.sleep(_late)
_logged = _t.time()
"""

CHILD = """
import json, sys, time
sys.path.insert(0, {here!r})
from _common import Shell
shell = Shell()
shell.run({cell!r}, track="-e bench-server -n {name}")
logged = shell["_logged"]
import nbtrack
ok = nbtrack.wait(1800)
print(json.dumps({{"logged": logged, "stored": time.time(), "ok": ok}}), flush=True)
"""


@dataclass
class Kernel:
    name: str
    process: subprocess.Popen[str]
    run_id: str | None = None
    start: float = 0.0
    visible: float = 0.0
    logged: float = 0.0
    stored: float = 0.0
    lags: list[float] = field(default_factory=list)


def start_kernel(name: str, env: dict[str, str], steps: int, rate: float) -> Kernel:
    cell = CELL.format(steps=steps, rate=rate, chunk=100)
    code = CHILD.format(here=str(HERE), cell=cell, name=name)
    process = subprocess.Popen(  # noqa: S603 - our own snippet
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True
    )
    return Kernel(name, process)


def watch(kernel: Kernel, uri: str, done: threading.Event) -> None:
    """The kernel's lines, and its run's freshest visible point, twice a second."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    assert kernel.process.stdout is not None
    first = json.loads(kernel.process.stdout.readline())
    kernel.run_id, kernel.start, kernel.visible = first["run_id"], first["start"], first["visible"]
    reader = threading.Thread(target=_read_end, args=(kernel,), daemon=True)
    reader.start()
    while not kernel.logged and not done.is_set():
        metrics = client.get_run(kernel.run_id).data.metrics
        now = time.time()
        kernel.lags.append(now - metrics["loss"] if "loss" in metrics else now - kernel.start)
        time.sleep(0.5)
    reader.join()


def _read_end(kernel: Kernel) -> None:
    assert kernel.process.stdout is not None
    last = json.loads(kernel.process.stdout.readline())
    if not last["ok"]:
        raise RuntimeError(f"{kernel.name}: nbtrack.wait() timed out")
    kernel.logged, kernel.stored = last["logged"], last["stored"]
    kernel.process.wait()


def run_kernels(
    store: str, uri: str, folder: Path, *, count: int, steps: int, rate: float, share: str
) -> dict[str, Any]:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "NBTRACK_SPOOL_DIR": str(folder / "spool"),
        "NBTRACK_STATE_DIR": str(folder / "state"),
        "NBTRACK_END_WAIT": "0",
        "NBTRACK_SYNC_CPU_SHARE": share,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")])
        ),
    }
    kernels = [start_kernel(f"{store}-{count}-{i}", env, steps, rate) for i in range(count)]
    done = threading.Event()
    watchers = [threading.Thread(target=watch, args=(k, uri, done)) for k in kernels]
    for watcher in watchers:
        watcher.start()
    for watcher in watchers:
        watcher.join()
    # Every point of every kernel, read back: a benchmark that lost data would measure nothing.
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    for kernel in kernels:
        stored = len(client.get_metric_history(kernel.run_id, "loss"))
        if stored != steps:
            raise RuntimeError(f"{kernel.name}: {stored} of {steps} steps stored")
    first = min(k.visible for k in kernels)
    last = max(k.stored for k in kernels)
    lags = [lag for k in kernels for lag in k.lags]
    return {
        "points_per_s": count * steps * 3 / (last - first),
        "lag_median": statistics.median(lags),
        "lag_p95": _percentile(lags, 0.95),
        "lag_worst_kernel": max(_percentile(k.lags, 0.95) for k in kernels),
        "visible": statistics.median(k.visible - k.start for k in kernels),
        "drain": statistics.median(k.stored - k.logged for k in kernels),
        "drain_max": max(k.stored - k.logged for k in kernels),
        "logging_s": statistics.median(k.logged - k.visible for k in kernels),
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _f(seconds: float) -> str:
    return f"{seconds:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--stores", nargs="+", default=["sqlite", "server"])
    parser.add_argument("--kernels", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    parser.add_argument("--rate", type=float, default=4400, help="points/s of the lag table")
    parser.add_argument("--seconds", type=float, default=15, help="logging time, lag table")
    parser.add_argument("--workers", type=int, default=4, help="the server's workers")
    parser.add_argument("--quick", action="store_true", help="1 and 4 kernels, 10k and 30k")
    args = parser.parse_args()
    if args.quick:
        args.kernels, args.sizes, args.seconds = [1, 4], [10_000, 30_000], 10
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    root = Path(tempfile.mkdtemp(prefix="nbtrack-bench-server-"))
    stores: dict[str, str] = {}
    stack = None
    try:
        if "server" in args.stores:
            from team_stack import Stack, free_port

            stack = Stack(root / "team", port=free_port(), workers=args.workers)
            stack.start()
            stores["server"] = stack.url
        if "sqlite" in args.stores:
            stores["sqlite"] = f"sqlite:///{root / 'mlflow.db'}"
            from mlflow import MlflowClient

            MlflowClient(tracking_uri=stores["sqlite"]).search_experiments()  # created once
        report(args, stores, root)
    finally:
        if stack is not None:
            stack.stop()
            if stack.postgres.as_root:
                shutil.rmtree(stack.postgres.data.parent, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


def report(args: argparse.Namespace, stores: dict[str, str], root: Path) -> None:
    def measure(store: str, count: int, steps: int, rate: float, share: str) -> dict[str, Any]:
        folder = Path(tempfile.mkdtemp(dir=root))
        return run_kernels(
            store, stores[store], folder, count=count, steps=steps, rate=rate, share=share
        )

    steps = int(args.rate * args.seconds / 3)
    print(f"## 1. One kernel logging {args.rate:,.0f} points/s for {args.seconds:.0f} s\n")
    rows = []
    for store in stores:
        for share in ("auto", "0.05"):
            r = measure(store, 1, steps, args.rate, share)
            rows.append([store, share, _f(r["visible"]), _f(r["lag_median"]), _f(r["lag_p95"]),
                         _f(r["drain"]), f"{r['points_per_s']:,.0f}"])  # fmt: skip
    print(table(["store", "NBTRACK_SYNC_CPU_SHARE", "run visible s", "lag median s",
                 "lag p95 s", "drain s", "points/s"], rows))  # fmt: skip

    per_kernel = 1000.0
    print(f"\n## 2. Kernels at once, each logging {per_kernel:,.0f} points/s for 10 s\n")
    rows = []
    for count in args.kernels:
        for store in stores:
            r = measure(store, count, int(per_kernel * 10 / 3), per_kernel, "auto")
            rows.append([str(count), store, _f(r["lag_median"]), _f(r["lag_p95"]),
                         _f(r["lag_worst_kernel"]), _f(r["drain"]), _f(r["drain_max"]),
                         f"{r['points_per_s']:,.0f}"])  # fmt: skip
    print(table(["kernels", "store", "lag median s", "lag p95 s", "worst kernel p95 s",
                 "drain s", "drain max s", "points/s, all"], rows))  # fmt: skip

    print("\n## 3. One kernel logging as fast as it can\n")
    rows = []
    for size in args.sizes:
        for store in stores:
            r = measure(store, 1, size // 3, 0.0, "auto")
            rows.append([f"{size:,}", store, _f(r["logging_s"]), _f(r["drain"]),
                         f"{r['points_per_s']:,.0f}"])  # fmt: skip
    print(table(["points", "store", "logging s", "drain s", "points/s"], rows))
    print(
        "\nlag: age of the freshest point MLflow shows, sampled twice a second while the cell "
        "logs; run visible: cell start to the run existing in MLflow; drain: cell end to "
        "nbtrack.wait() returning; points/s: every point of every kernel over first log to "
        "last wait."
    )


if __name__ == "__main__":
    main()
