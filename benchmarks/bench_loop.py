"""A CPU PyTorch training loop, untracked against tracked with three metrics logged every step.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_loop.py [--pairs 15] [--seconds 1.5]

A small MLP (one optimizer step ~0.5 ms on one thread) trains in cells of a real IPython shell,
plainly or under ``%%track`` with ``nbtrack.log(loss=loss, lr=..., progress=...)`` every step
(``loss`` a 0-d tensor), the sync process uploading into SQLite for real. Only loops are timed:
a cell's start and end (creating the run, writing the record) happen once per cell, not per
step. About 7 minutes with the defaults. Three measurements, all in the same run:

1. Whole runs: untracked, tracked, untracked, ... Each tracked run is compared with the mean of
   the untracked runs on either side; the median of those ratios, with a bootstrap interval, is
   the overhead. The same estimator on untracked runs alone shows what the machine's noise
   reads as. This counts everything, but a shared 2-vCPU machine blurs it by several percent.
2. Inside one tracked cell, what the call costs inside a real loop, where caches are cold
   (several times its cost in bench_log), two ways: timed around the call itself, net of a
   no-op; and blocks of 100 steps alternating without and with the call (each block against
   its two neighbours, ~45 ms apart, so drifts cancel), which also catches what the call costs
   the steps after it. Variants: ``loss.item()`` alone, a *floor* (``loss.item()`` and a
   timestamped tuple appended to a list), a log of floats, the benchmark's log, and the same
   in nbtrack's Python version.
3. What runs beside the loop: the sender thread's CPU time per step, and the sync process's
   share of a core while the loop ran times how much a busy sync process slows the loop (the
   latter measured by stopping and continuing a process doing the same MLflow work, block by
   block).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Shell, isolate, median, table

SETUP_CELL = """
import os, signal, torch
from time import perf_counter as _perf_counter
from time import process_time as _process_time, thread_time as _thread_time
from time import perf_counter_ns as _ns, time as _time
from nbtrack.run import _log_py
torch.set_num_threads(1)

def _model():
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
    return model, optimizer, x, y, lossf

def _steps(state, steps, log):
    # The training step, the same in every measurement; `log` is called after each step.
    model, optimizer, x, y, lossf = state
    for i in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = lossf(model(x), y)
        loss.backward()
        optimizer.step()
        if log is not None:
            log(loss=loss, lr=0.01, progress=i / steps)

def _train(steps, log):
    state = _model()
    wall, cpu, own = _perf_counter(), _process_time(), _thread_time()
    _steps(state, steps, log)
    end = _perf_counter()
    # Wall time; CPU time of the whole kernel process (loop + sender thread); CPU time of the
    # loop's own thread; when the loop ended.
    return end - wall, _process_time() - cpu, _thread_time() - own, end

def _blocks(n_blocks, block_steps, log=None, toggle=None):
    # Odd blocks call `log` every step (or run with `toggle(True)`), even blocks do not.
    state = _model()
    times = []
    for b in range(n_blocks):
        on = b % 2 == 1
        if toggle is not None:
            toggle(on)
        start = _perf_counter()
        _steps(state, block_steps, log if on else None)
        times.append(_perf_counter() - start)
    if toggle is not None:
        toggle(False)
    return times

def _timed(n_steps, calls, segment=100):
    # Each call timed around itself inside the loop, where caches are as cold as in training:
    # mean ns per call of each function in `calls`. They take turns in segments of `segment`
    # steps, so that drifts of the machine spread over all of them and each call site logs
    # consecutive steps, as in a training loop.
    # The step is written out here rather than taken from `_steps`, so that the timer wraps the
    # call alone and the call keeps written-out keywords (a wrapper passing **kwargs on would
    # hide its call site from nbtrack's C version).
    model, optimizer, x, y, lossf = _model()
    spent = [0] * len(calls)
    counted = [0] * len(calls)
    for i in range(n_steps):
        optimizer.zero_grad(set_to_none=True)
        loss = lossf(model(x), y)
        loss.backward()
        optimizer.step()
        which = i // segment % len(calls)
        call = calls[which]
        start = _ns()
        call(loss=loss, lr=0.01, progress=i / n_steps)
        spent[which] += _ns() - start
        counted[which] += 1
    return [total / count for total, count in zip(spent, counted)]

def _noop(loss, lr, progress):
    pass

_kept = []

def _floor(loss, lr, progress):
    # The least a tracker in Python does per step: read the tensor, keep a timestamped record.
    _kept.append((None, _time(), {"loss": loss.item(), "lr": lr, "progress": progress}))
    if len(_kept) >= 1000:
        _kept.clear()

def _item_only(loss, lr, progress):
    loss.item()

def _log_floats(loss, lr, progress):
    nbtrack.log(loss=0.5, lr=lr, progress=progress)
"""

# The sync process's work without nbtrack around it: MLflow's client writing batches into a
# SQLite store, at the sync process's priority. Stopped and continued block by block.
_MLFLOW_WORK = """
import os, sys, time
os.nice(10)
from mlflow import MlflowClient
from mlflow.entities import Metric
client = MlflowClient(tracking_uri=sys.argv[1])
run_id = client.create_run("0").info.run_id
print("ready", flush=True)
step = 0
while True:
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric("m", 0.5, now, step + i) for i in range(1000)])
    step += 1000
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


def _sender_cpu_seconds() -> float:
    """CPU time the kernel's sender thread has used so far."""
    from nbtrack import _sender

    thread = None if _sender._sender is None else _sender._sender._thread
    if thread is None or thread.ident is None:
        return 0.0
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def _calibrate(shell: Shell) -> float:
    shell.run("_elapsed = _train(300, None)")
    return float(shell["_elapsed"][0]) / 300


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.2f} %"


def _between(runs: Sequence[float]) -> list[float]:
    """Each odd-numbered run against the mean of the runs just before and after it."""
    return [runs[i] / ((runs[i - 1] + runs[i + 1]) / 2) for i in range(1, len(runs) - 1, 2)]


def _median_ci(ratios: list[float], resamples: int = 4000) -> tuple[float, float, float]:
    """The median and a 95 % bootstrap interval of it (fixed seed: reruns print the same)."""
    pick = random.Random(0).choices  # noqa: S311 - resampling, not secrets
    medians = sorted(median(pick(ratios, k=len(ratios))) for _ in range(resamples))
    return median(ratios), medians[int(0.025 * resamples)], medians[int(0.975 * resamples)]


def _with_ci(ratios: list[float]) -> str:
    mid, low, high = _median_ci(ratios)
    return f"{_pct(mid)}  [{_pct(low)} .. {_pct(high)}]"


def _whole_runs(shell: Shell, args: argparse.Namespace, steps: int, sync_pid: int) -> dict:
    """Measurement 1: untracked, tracked, untracked, ... runs of ``steps`` steps."""
    import nbtrack

    walls: list[float] = []
    loop_cpu: list[float] = []
    untracked_between: list[float] = []
    upload_after_s: list[float] = []
    sender_s = sync_during_s = tracked_s = 0.0
    for index in range(2 * args.pairs + 1):
        if index % 2 == 0:
            shell.run(f"_elapsed = _train({steps}, None)")
        else:
            sender_before, sync_before = _sender_cpu_seconds(), _cpu_seconds(sync_pid)
            pause, resume = (
                (f"os.kill({sync_pid}, signal.SIGSTOP)\n", f"os.kill({sync_pid}, signal.SIGCONT)")
                if args.pause_sync
                else ("", "")
            )
            # The sync process's CPU is read as the loop ends, before the cell's end lifts the
            # pacing to upload the rest at full speed.
            shell.run(
                f"{pause}_elapsed = _train({steps}, nbtrack.log)\n"
                f"_sync_cpu = _bench_cpu({sync_pid})\n{resume}",
                track=f"-e bench-loop -n tracked-{index // 2}",
            )
            sync_during_s += shell["_sync_cpu"] - sync_before
            sender_s += _sender_cpu_seconds() - sender_before
            tracked_s += shell["_elapsed"][0]
            # The rest of the upload finishes before the next run, so that no untracked run
            # competes with it.
            nbtrack.wait()
            upload_after_s.append(time.perf_counter() - shell["_elapsed"][3])
        walls.append(shell["_elapsed"][0])
        loop_cpu.append(shell["_elapsed"][2])
        if index % 2 == 0:
            untracked_between.append(shell["_elapsed"][0])
    return {
        "walls": walls,
        "wall": _between(walls),
        "loop_cpu": _between(loop_cpu),
        # The same estimator with an untracked run in the middle: the machine's noise.
        "control": _between(untracked_between),
        "sender_s": sender_s,
        "sync_share": sync_during_s / tracked_s,
        "upload_after_s": median(upload_after_s),
    }


def _interleaved(shell: Shell, call: str, blocks: int, track: bool) -> list[float]:
    """Measurement 2 (and 3): per-block ratios of "on" blocks against their neighbours."""
    tracking = "-e bench-loop -n blocks" if track else None
    shell.run(f"_times = _blocks({blocks}, 100, {call})", track=tracking)
    return _between(shell["_times"])


def _contention(shell: Shell, folder: Path, blocks: int) -> list[float]:
    """How much a process doing the sync process's MLflow work slows the loop while it runs."""
    work = subprocess.Popen(  # noqa: S603 - our own snippet, no shell
        [sys.executable, "-c", _MLFLOW_WORK, f"sqlite:///{folder / 'contention.db'}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert work.stdout is not None
        work.stdout.readline()  # imported and connected: from here on it only writes
        time.sleep(1.0)
        os.kill(work.pid, signal.SIGSTOP)

        def toggle(on: bool) -> None:
            os.kill(work.pid, signal.SIGCONT if on else signal.SIGSTOP)

        shell["_toggle"] = toggle
        return _interleaved(shell, "toggle=_toggle", blocks, track=False)
    finally:
        os.kill(work.pid, signal.SIGCONT)
        work.kill()
        work.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pairs", type=int, default=15, help="tracked whole runs (15)")
    parser.add_argument("--seconds", type=float, default=1.5, help="length of one run (1.5)")
    parser.add_argument("--blocks", type=int, default=301, help="blocks per interleaved run")
    parser.add_argument(
        "--timed-steps", type=int, default=2000, help="steps per call timed around itself"
    )
    parser.add_argument(
        "--pause-sync",
        action="store_true",
        help="diagnosis: stop the sync process while a tracked loop runs (it uploads right "
        "after), to tell the kernel's own cost from the sync process competing for the CPU",
    )
    args = parser.parse_args()
    if args.pairs < 2 or args.blocks < 3:
        parser.error(
            "--pairs needs 2 or more (the control compares untracked runs with each "
            "other) and --blocks 3 or more"
        )

    folder = isolate("loop")
    shell = Shell()
    shell.run(SETUP_CELL)
    shell["_bench_cpu"] = _cpu_seconds
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

    whole = _whole_runs(shell, args, steps, sync_pid)
    walls = whole["walls"]
    step_us = median(walls[0::2]) / steps * 1e6
    print(
        f"{steps:,} steps per run, {step_us:.0f} µs per step untracked (median), 3 metrics "
        f"per step: {3e6 / step_us:,.0f} points/s while tracked\n"
    )
    print("1. Whole runs, untracked / tracked / untracked:\n")
    rows = [
        [
            f"run {i + 1}",
            f"{walls[2 * i]:.3f}",
            f"{walls[2 * i + 1]:.3f}",
            f"{walls[2 * i + 2]:.3f}",
            _pct(whole["wall"][i]),
            _pct(whole["loop_cpu"][i]),
        ]
        for i in range(args.pairs)
    ]
    print(table(["", "untracked s", "tracked s", "untracked s", "wall", "loop thread CPU"], rows))
    print(
        f"\noverhead, median [95 % interval]: wall {_with_ci(whole['wall'])}; "
        f"loop thread CPU {_with_ci(whole['loop_cpu'])}\n"
        f"control, untracked between untracked: wall {_with_ci(whole['control'])}\n"
    )

    print("2. Inside one tracked cell, the call's cost in the loop:\n")
    variants = [
        ("control: a no-op function", "_noop"),
        ("loss.item() alone (reading the tensor)", "_item_only"),
        ("floor: loss.item() + a timestamped record appended", "_floor"),
        ("nbtrack.log, three floats", "_log_floats"),
        ("nbtrack.log(loss=loss, lr=, progress=)", "nbtrack.log"),
        ("the same, Python version (no C compiler)", "_log_py"),
    ]
    in_loop: dict[str, list[float]] = {}
    for label, call in variants:
        in_loop[label] = _interleaved(shell, call, args.blocks, track=True)
    calls = ", ".join(call for _, call in variants)
    shell.run(
        f"_own = _timed({len(variants) * args.timed_steps}, [{calls}])",
        track="-e bench-loop -n timed",
    )
    own_us = [(ns - shell["_own"][0]) / 1e3 for ns in shell["_own"]]
    sync_slowdown = _contention(shell, folder, args.blocks)
    rows = []
    for (label, _), ratios, own in zip(variants, in_loop.values(), own_us, strict=True):
        mid = median(ratios)
        rows.append([label, f"{own:.2f}", f"{(mid - 1) * step_us:.2f}", _with_ci(ratios)])
    print(
        table(
            [
                "call in the loop",
                "timed around it, µs",
                "blocks: µs per step",
                "blocks: % of a step, median [95 % interval]",
            ],
            rows,
        )
    )
    print(
        "\n(timed around it: the call's own time, net of timing a no-op; blocks of 100 steps "
        "without / with it: also what it costs the steps around it)"
    )

    log_share = median(in_loop["nbtrack.log(loss=loss, lr=, progress=)"]) - 1
    floor_share = median(in_loop["floor: loss.item() + a timestamped record appended"]) - 1
    own_share = own_us[-2] / step_us
    sender_share = whole["sender_s"] / (args.pairs * steps * step_us / 1e6)
    contention = median(sync_slowdown) - 1
    sync_effect = contention * whole["sync_share"]
    beside = sender_share + sync_effect
    print(
        "\n3. Beside the loop:\n\n"
        f"sender thread: {whole['sender_s']:.3f} CPU s over {args.pairs} tracked runs = "
        f"{sender_share * 100:.2f} % of the loop's time (an upper bound: the loop releases the "
        "GIL inside torch)\n"
        f"sync process while the loop ran: {whole['sync_share'] * 100:.1f} % of a core "
        f"(paced at NBTRACK_SYNC_CPU_SHARE); a busy sync process slows the loop by "
        f"{_with_ci(sync_slowdown)}, so it costs about {sync_effect * 100:.2f} %\n"
        f"from the loop's end to all stored: median {whole['upload_after_s']:.2f} s\n\n"
        "Overhead from the parts (2 + 3), target < 1 %:\n"
        f"  with the call measured by blocks: {(log_share + beside) * 100:.2f} % of a step "
        f"(the floor alone, by blocks: {floor_share * 100:.2f} %)\n"
        f"  with the call timed around it:    {(own_share + beside) * 100:.2f} % of a step\n"
        f"measured whole (1): {_pct(median(whole['wall']))}"
    )


if __name__ == "__main__":
    main()
