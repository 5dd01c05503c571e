"""A CPU PyTorch training loop, untracked against tracked with three metrics logged every step.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_loop.py [--pairs 7] [--seconds 3]

A small MLP (one optimizer step ~0.5 ms on one thread) trains for a fixed number of steps in
cells of a real IPython shell: once plainly, once under ``%%track`` with
``nbtrack.log(loss=loss, lr=..., progress=...)`` every step (``loss`` a 0-d tensor), the sync
process uploading into SQLite for real while the loop runs. Runs alternate (ABBA order, so slow
drifts of a shared machine cancel) and each pair gives a ratio tracked/untracked; the median
ratio is the overhead. Only the loop is timed: a cell's start and end (creating the run,
writing the record) happen once per cell, not per step. About a minute with the defaults.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Shell, fmt, isolate, median, table

SETUP_CELL = """
import os, signal, torch
from time import perf_counter as _perf_counter
from time import process_time as _process_time, thread_time as _thread_time
torch.set_num_threads(1)

def _train(steps, log):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(128, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(32, 128), torch.randint(0, 10, (32,))
    lossf = torch.nn.functional.cross_entropy
    for _ in range(50):  # first steps allocate; keep them out of the timing
        optimizer.zero_grad(set_to_none=True)
        lossf(model(x), y).backward()
        optimizer.step()
    wall, cpu, own = _perf_counter(), _process_time(), _thread_time()
    for i in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = lossf(model(x), y)
        loss.backward()
        optimizer.step()
        if log is not None:
            log(loss=loss, lr=0.01, progress=i / steps)
    end = _perf_counter()
    # Wall time; CPU time of the whole kernel process (loop + sender thread); CPU time of the
    # loop's own thread, which a busy shared machine disturbs much less than wall time.
    return end - wall, _process_time() - cpu, _thread_time() - own, end
"""


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (Linux), 0 if it cannot be read."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _worker_pid() -> int | None:
    from nbtrack.sinks import mlflow as spool_sink

    sessions = list(spool_sink._sessions.values())
    return sessions[0].worker_pid if sessions else None


def _calibrate(shell: Shell) -> float:
    shell.run("_elapsed = _train(300, None)")
    return float(shell["_elapsed"][0]) / 300


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.2f} %"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pairs", type=int, default=7, help="untracked/tracked pairs (7)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one run (3)")
    parser.add_argument(
        "--pause-sync",
        action="store_true",
        help="diagnosis: stop the sync process while a tracked loop runs (it uploads right "
        "after), to tell the kernel's own cost from the sync process competing for the CPU",
    )
    parser.add_argument(
        "--nice-sync",
        type=int,
        default=0,
        metavar="N",
        help="diagnosis: lower the sync process's CPU priority by N (os.setpriority) once it "
        "has started, to see what a lower priority would buy the training loop",
    )
    args = parser.parse_args()

    isolate("loop")
    shell = Shell()
    shell.run(SETUP_CELL)
    # The fastest of three short runs: a busy moment of a shared machine must not set the size.
    step_s = min(_calibrate(shell) for _ in range(3))
    steps = max(100, int(args.seconds / step_s))
    # A first tracked cell imports MLflow, creates the store and starts the sync process.
    shell.run("_train(100, nbtrack.log)", track="-e bench-loop -n warm-up")
    import nbtrack

    nbtrack.wait(60)
    sync_pid = _worker_pid()
    if sync_pid is None:
        msg = "no sync process was started: is the tracking store a local SQLite file?"
        raise RuntimeError(msg)
    if args.nice_sync:
        os.setpriority(os.PRIO_PROCESS, sync_pid, args.nice_sync)

    # Per kind: (wall s, kernel CPU s, loop thread CPU s) of each run.
    measured: dict[str, list[tuple[float, float, float]]] = {"untracked": [], "tracked": []}
    upload_after_s: list[float] = []
    worker_cpu = 0.0
    for pair in range(args.pairs):
        order = ("untracked", "tracked") if pair % 2 == 0 else ("tracked", "untracked")
        for kind in order:
            if kind == "untracked":
                shell.run(f"_elapsed = _train({steps}, None)")
            else:
                pid = _worker_pid()
                before = _cpu_seconds(pid)
                pause, resume = (
                    (f"os.kill({pid}, signal.SIGSTOP)\n", f"\nos.kill({pid}, signal.SIGCONT)")
                    if args.pause_sync
                    else ("", "")
                )
                shell.run(
                    f"{pause}_elapsed = _train({steps}, nbtrack.log){resume}",
                    track=f"-e bench-loop -n tracked-{pair}",
                )
                # What the sync process has not uploaded yet is finished before the next run,
                # so that no untracked run competes with an upload.
                nbtrack.wait()
                upload_after_s.append(time.perf_counter() - shell["_elapsed"][3])
                worker_cpu += _cpu_seconds(_worker_pid()) - before
            measured[kind].append(tuple(shell["_elapsed"][:3]))

    def ratios(column: int) -> list[float]:
        return [
            t[column] / u[column]
            for t, u in zip(measured["tracked"], measured["untracked"], strict=True)
        ]

    wall, kernel_cpu, loop_cpu = ratios(0), ratios(1), ratios(2)
    untracked_wall = [u[0] for u in measured["untracked"]]
    tracked_wall = [t[0] for t in measured["tracked"]]
    points = 3 * steps * args.pairs
    run_s = median(untracked_wall)
    print(
        f"{steps:,} steps per run, {run_s / steps * 1e3:.3f} ms per step untracked (median), "
        f"3 metrics per step: {3 * steps / run_s:,.0f} points/s while tracked\n"
    )
    rows = [
        [
            f"pair {i + 1}",
            f"{u[0]:.3f}",
            f"{t[0]:.3f}",
            _pct(wall[i]),
            _pct(loop_cpu[i]),
            _pct(kernel_cpu[i]),
        ]
        for i, (u, t) in enumerate(zip(measured["untracked"], measured["tracked"], strict=True))
    ]
    headers = ["", "untracked s", "tracked s", "wall", "loop thread CPU", "kernel CPU"]
    print(table(headers, rows))
    quartiles = statistics.quantiles(wall, n=4) if len(wall) > 1 else [wall[0]] * 3
    print()
    print(
        f"overhead, median of pairs (wall): {_pct(median(wall))}  (target < 1 %)\n"
        f"  spread: min {_pct(min(wall))}, quartiles {_pct(quartiles[0])} .. "
        f"{_pct(quartiles[2])}, max {_pct(max(wall))}\n"
        f"overhead, fastest tracked / fastest untracked run (wall): "
        f"{_pct(min(tracked_wall) / min(untracked_wall))}\n"
        f"overhead in CPU time, median of pairs: loop thread {_pct(median(loop_cpu))}, "
        f"kernel process (loop + sender thread) {_pct(median(kernel_cpu))}\n"
        f"noise floor: untracked runs alone vary by "
        f"{(max(untracked_wall) / min(untracked_wall) - 1) * 100:.1f} % (max/min)\n"
        f"sync process: {worker_cpu:.2f} CPU s for {points:,} points "
        f"({fmt(worker_cpu / points * 1e6)} µs/point, outside the kernel); "
        f"from the loop's end to all stored: median {median(upload_after_s):.2f} s"
    )


if __name__ == "__main__":
    main()
