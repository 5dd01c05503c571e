"""nbtrack inside a real CPU training loop: the call against its floor, and nbtrack's whole share.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_loop.py [--pairs 6] [--blocks 151]

Two training steps, each in cells of a real IPython shell, with the sync process uploading
into SQLite for real:

- *0.4 ms*: a 128-256-256-10 MLP, batch 32 (about 7,000 points/s logged at 3 metrics a step);
- *10 ms*: a 784-1024-1024-10 MLP, batch 100.

Both on one thread (``torch.set_num_threads(1)``). Every step logs three metrics, ``loss`` as
the 0-d tensor the step returns, in either call form: keywords
``nbtrack.log(loss=loss, lr=0.01, progress=p)`` or a mapping
``nbtrack.log({"loss": loss, "lr": 0.01, "progress": p})``. The *floor* is the least any
Python-level tracker does per step: ``loss.item()`` and a timestamped tuple appended to a
list, written inline in the loop. Only loops are timed. Measured in the same run:

1. Whole runs: untracked, tracked, untracked, ...; each tracked run against the mean of its
   two neighbours, with the same estimator on untracked runs alone as a control. This counts
   everything, but a shared 2-core machine blurs it by several percent.
2. The call inside the loop, where every step evicts the caches (so a call costs several times
   what bench_log shows), two ways: timed around itself with ``perf_counter_ns`` (net of the
   timer alone); and blocks of steps alternating without and with it, each block against its
   two neighbours, which also counts what the call costs the steps after it. Each is printed
   as a ratio to the floor measured the same way (target: at most 2x).
3. Beside the loop: the sender thread's CPU time, and the sync process's share of a core while
   the loop ran times how much a busy process doing the same MLflow work slows the loop.

nbtrack's whole share of a step is 2 + 3 (targets: under 2 % of a 0.4 ms step, under 1 % of
a 10 ms step). About 4 minutes with the defaults; ``--only 0.4ms`` or ``--only 10ms`` runs one.
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
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Shell, isolate, median, table


@dataclass(frozen=True)
class Config:
    name: str
    inputs: int
    hidden: int
    batch: int
    block_steps: int  # steps per interleaved block
    seconds_factor: float  # whole runs last --seconds times this


CONFIGS = (
    Config("0.4ms", inputs=128, hidden=256, batch=32, block_steps=100, seconds_factor=1.0),
    Config("10ms", inputs=784, hidden=1024, batch=100, block_steps=10, seconds_factor=2.0),
)

# What a step does after the optimizer step, by number. Blocks and the timed loop write each
# out, so that every call site is a real one (no wrapper between the loop and the call).
NOTHING, ITEM, FLOOR, LOG_KEYWORDS, LOG_MAPPING, NOOP_CALL, FLOOR_CALL, LOG_FLOATS = range(8)
LABELS = {
    NOTHING: "nothing (control)",
    NOOP_CALL: "a no-op function, same keywords",
    ITEM: "loss.item() alone",
    FLOOR: "floor: loss.item() + timestamped tuple appended",
    LOG_KEYWORDS: "nbtrack.log(loss=loss, lr=, progress=)",
    LOG_MAPPING: 'nbtrack.log({"loss": loss, "lr": , "progress": })',
    # Where the call's time goes: the floor behind a Python function call, and nbtrack.log
    # given the float that loss.item() returns (so it reads no tensor).
    FLOOR_CALL: "diagnosis: the floor inside a function, same keywords",
    LOG_FLOATS: "diagnosis: nbtrack.log(loss=loss.item(), lr=, progress=)",
}

SETUP_CELL = """
import os, signal, torch
from time import perf_counter as _perf_counter
from time import process_time as _process_time, thread_time as _thread_time
from time import perf_counter_ns as _ns, time as _time
torch.set_num_threads(1)

def _model(inputs, hidden, batch):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(inputs, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, 10),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(batch, inputs), torch.randint(0, 10, (batch,))
    lossf = torch.nn.functional.cross_entropy
    for _ in range(20):  # first steps allocate; keep them out of the timing
        optimizer.zero_grad(set_to_none=True)
        lossf(model(x), y).backward()
        optimizer.step()
    return model, optimizer, x, y, lossf

_kept = []

def _noop(loss, lr, progress):
    pass

def _floor_call(loss, lr, progress):
    _kept.append((None, _time(), {"loss": loss.item(), "lr": lr, "progress": progress}))

def _steps(state, steps, mode):
    # The training step, the same in every measurement, then what `mode` says.
    model, optimizer, x, y, lossf = state
    for i in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = lossf(model(x), y)
        loss.backward()
        optimizer.step()
        if mode == 0:
            pass
        elif mode == 1:
            loss.item()
        elif mode == 2:
            _kept.append((None, _time(), {"loss": loss.item(), "lr": 0.01, "progress": i / steps}))
            if len(_kept) >= 1000:
                _kept.clear()
        elif mode == 3:
            nbtrack.log(loss=loss, lr=0.01, progress=i / steps)
        elif mode == 4:
            nbtrack.log({"loss": loss, "lr": 0.01, "progress": i / steps})
        else:
            _noop(loss=loss, lr=0.01, progress=i / steps)

def _train(config, steps, mode):
    state = _model(*config)
    wall, cpu, own = _perf_counter(), _process_time(), _thread_time()
    _steps(state, steps, mode)
    end = _perf_counter()
    # Wall time; CPU time of the whole kernel process (loop + sender thread); CPU time of the
    # loop's own thread; when the loop ended.
    return end - wall, _process_time() - cpu, _thread_time() - own, end

def _blocks(config, n_blocks, block_steps, mode, toggle=None):
    # Odd blocks run `mode` every step (or with `toggle(True)`), even blocks do nothing more.
    state = _model(*config)
    times = []
    for b in range(n_blocks):
        on = b % 2 == 1
        if toggle is not None:
            toggle(on)
        start = _perf_counter()
        _steps(state, block_steps, mode if on else 0)
        times.append(_perf_counter() - start)
    if toggle is not None:
        toggle(False)
    return times

def _timed(config, n_steps, segment):
    # Each variant timed around itself inside the loop, where the caches are as cold as
    # training leaves them: mean ns per step of each variant. They take turns in segments of
    # `segment` steps, so drifts of the machine spread over all of them and each call site
    # logs consecutive steps, as in a training loop.
    model, optimizer, x, y, lossf = _model(*config)
    spent = [0] * 8
    counted = [0] * 8
    for i in range(n_steps):
        optimizer.zero_grad(set_to_none=True)
        loss = lossf(model(x), y)
        loss.backward()
        optimizer.step()
        which = i // segment % 8
        p = i / n_steps
        if which == 0:
            start = _ns()
            spent[0] += _ns() - start
        elif which == 1:
            start = _ns()
            loss.item()
            spent[1] += _ns() - start
        elif which == 2:
            start = _ns()
            _kept.append((None, _time(), {"loss": loss.item(), "lr": 0.01, "progress": p}))
            spent[2] += _ns() - start
        elif which == 3:
            start = _ns()
            nbtrack.log(loss=loss, lr=0.01, progress=p)
            spent[3] += _ns() - start
        elif which == 4:
            start = _ns()
            nbtrack.log({"loss": loss, "lr": 0.01, "progress": p})
            spent[4] += _ns() - start
        elif which == 5:
            start = _ns()
            _noop(loss=loss, lr=0.01, progress=p)
            spent[5] += _ns() - start
        elif which == 6:
            start = _ns()
            _floor_call(loss=loss, lr=0.01, progress=p)
            spent[6] += _ns() - start
        else:
            start = _ns()
            nbtrack.log(loss=loss.item(), lr=0.01, progress=p)
            spent[7] += _ns() - start
        if len(_kept) >= 1000:
            _kept.clear()
        counted[which] += 1
    return [total / count for total, count in zip(spent, counted)]
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
    from nbtrack.journal import session

    sessions = list(session._sessions.values())
    return sessions[0].worker_pid if sessions else None


def _sender_cpu_seconds() -> float:
    """CPU time the kernel's sender thread has used so far."""
    from nbtrack import _sender

    thread = None if _sender._sender is None else _sender._sender._thread
    if thread is None or thread.ident is None:
        return 0.0
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


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


def _config_tuple(config: Config) -> str:
    return f"({config.inputs}, {config.hidden}, {config.batch})"


def _whole_runs(
    shell: Shell, config: Config, *, pairs: int, steps: int, sync_pid: int, pause_sync: bool
) -> dict:
    """Measurement 1 (and the sender's and sync process's CPU for 3): whole runs of ``steps``
    steps, untracked, tracked, untracked, ..."""
    import nbtrack

    cfg = _config_tuple(config)
    walls: list[float] = []
    loop_cpu: list[float] = []
    untracked_between: list[float] = []
    upload_after_s: list[float] = []
    sender_s = sync_during_s = tracked_s = 0.0
    for index in range(2 * pairs + 1):
        if index % 2 == 0:
            shell.run(f"_elapsed = _train({cfg}, {steps}, {NOTHING})")
        else:
            sender_before, sync_before = _sender_cpu_seconds(), _cpu_seconds(sync_pid)
            pause, resume = (
                (f"os.kill({sync_pid}, signal.SIGSTOP)\n", f"os.kill({sync_pid}, signal.SIGCONT)")
                if pause_sync
                else ("", "")
            )
            # The sync process's CPU is read as the loop ends, before the cell's end lifts the
            # pacing to upload the rest at full speed.
            shell.run(
                f"{pause}_elapsed = _train({cfg}, {steps}, {LOG_KEYWORDS})\n"
                f"_sync_cpu = _bench_cpu({sync_pid})\n{resume}",
                track=f"-e bench-loop -n {config.name}-tracked-{index // 2}",
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
        "sender_share": sender_s / tracked_s,
        "sync_share": sync_during_s / tracked_s,
        "upload_after_s": median(upload_after_s),
    }


def _interleaved(
    shell: Shell, config: Config, mode: int, blocks: int, *, track: bool, toggle: bool = False
) -> list[float]:
    """Per-block ratios of "on" blocks against their neighbours."""
    tracking = f"-e bench-loop -n {config.name}-blocks" if track else None
    extra = ", toggle=_toggle" if toggle else ""
    shell.run(
        f"_times = _blocks({_config_tuple(config)}, {blocks}, {config.block_steps}, {mode}{extra})",
        track=tracking,
    )
    return _between(shell["_times"])


def _contention(shell: Shell, folder: Path, config: Config, blocks: int) -> list[float]:
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
        return _interleaved(shell, config, NOTHING, blocks, track=False, toggle=True)
    finally:
        os.kill(work.pid, signal.SIGCONT)
        work.kill()
        work.wait()


def measure(
    shell: Shell, folder: Path, config: Config, args: argparse.Namespace, sync_pid: int
) -> dict[str, float]:
    """Everything for one configuration; prints its tables and returns its summary."""
    cfg = _config_tuple(config)
    # The fastest of three short runs: a busy moment of a shared machine must not set the size.
    calibration_steps = max(20, int(0.3 / (0.0005 if config.name == "0.4ms" else 0.01)))
    step_s = min(
        _run_value(shell, f"_train({cfg}, {calibration_steps}, 0)[0]") / calibration_steps
        for _ in range(3)
    )
    seconds = args.seconds * config.seconds_factor
    steps = max(50, int(seconds / step_s))
    whole = _whole_runs(
        shell, config, pairs=args.pairs, steps=steps, sync_pid=sync_pid, pause_sync=args.pause_sync
    )
    walls = whole["walls"]
    step_us = median(walls[0::2]) / steps * 1e6
    print(
        f"\n## {config.name} step: {config.inputs}-{config.hidden}-{config.hidden}-10 MLP, "
        f"batch {config.batch}\n\n"
        f"{steps:,} steps per run, {step_us:,.0f} µs per step untracked (median), 3 metrics "
        f"per step: {3e6 / step_us:,.0f} points/s while tracked\n"
    )
    print(
        f"1. Whole runs ({args.pairs} tracked, between untracked ones), median [95 % interval]:"
        f"\n   wall {_with_ci(whole['wall'])}; loop thread CPU {_with_ci(whole['loop_cpu'])}"
        f"\n   control, untracked between untracked: wall {_with_ci(whole['control'])}\n"
    )

    # 2. The call in the loop.
    timed_steps = args.timed_steps if config.name == "0.4ms" else args.timed_steps_10ms
    segment = 100 if config.name == "0.4ms" else 10
    shell.run(
        f"_own = _timed({cfg}, {len(LABELS) * timed_steps}, {segment})",
        track=f"-e bench-loop -n {config.name}-timed",
    )
    timer_ns = shell["_own"][NOTHING]
    own_us = {mode: (shell["_own"][mode] - timer_ns) / 1e3 for mode in LABELS}
    blocks = args.blocks if config.name == "0.4ms" else args.blocks_10ms
    by_blocks: dict[int, list[float]] = {}
    if blocks >= 3:
        for mode in (NOTHING, ITEM, FLOOR, LOG_KEYWORDS, LOG_MAPPING):
            by_blocks[mode] = _interleaved(shell, config, mode, blocks, track=True)
    floor_us = own_us[FLOOR]
    floor_block_us = (median(by_blocks[FLOOR]) - 1) * step_us if by_blocks else None
    rows = []
    for mode in (
        NOTHING,
        NOOP_CALL,
        ITEM,
        FLOOR,
        LOG_KEYWORDS,
        LOG_MAPPING,
        FLOOR_CALL,
        LOG_FLOATS,
    ):
        own = own_us[mode]
        row = [LABELS[mode], f"{own:.2f}", f"{own / floor_us:.2f}x" if mode != NOTHING else ""]
        if mode in by_blocks:
            block_us = (median(by_blocks[mode]) - 1) * step_us
            ratio = f"{block_us / floor_block_us:.2f}x" if floor_block_us and mode else ""
            row += [f"{block_us:.2f}", ratio, _with_ci(by_blocks[mode])]
        elif by_blocks:
            row += ["", "", ""]
        rows.append(row)
    headers = ["after each step", "timed around it, µs", "x floor"]
    if by_blocks:
        headers += ["blocks: µs per step", "x floor", "blocks: % of a step [95 % interval]"]
    blocks_note = f", {blocks} blocks of {config.block_steps} steps" if by_blocks else ""
    print(f"2. The call inside the loop ({timed_steps:,} steps timed{blocks_note} per variant):\n")
    print(table(headers, rows))
    print(
        "\n(timed around it: the statement's own time, net of the timer alone; blocks: "
        "steps with it against steps without, so also what it costs the steps after it)"
    )

    # 3. Beside the loop.
    sync_slowdown = _contention(shell, folder, config, args.contention_blocks)
    contention = median(sync_slowdown) - 1
    sync_effect = contention * whole["sync_share"]
    beside = whole["sender_share"] + sync_effect
    print(
        "\n3. Beside the loop:\n\n"
        f"sender thread: {whole['sender_share'] * 100:.2f} % of the tracked loops' time "
        "(its CPU time; an upper bound: the loop releases the GIL inside torch)\n"
        f"sync process while the loops ran: {whole['sync_share'] * 100:.1f} % of a core "
        f"(paced at NBTRACK_SYNC_CPU_SHARE); a busy MLflow process slows this loop by "
        f"{_with_ci(sync_slowdown)}, so the upload costs about {sync_effect * 100:.2f} %\n"
        f"from a loop's end to all stored: median {whole['upload_after_s']:.2f} s"
    )
    summary = {
        "step_us": step_us,
        "keywords_x_floor": own_us[LOG_KEYWORDS] / floor_us,
        "mapping_x_floor": own_us[LOG_MAPPING] / floor_us,
        "call_share": own_us[LOG_KEYWORDS] / step_us,
        "mapping_share": own_us[LOG_MAPPING] / step_us,
        "beside": beside,
        "whole": median(whole["wall"]) - 1,
    }
    if by_blocks and floor_block_us:
        summary["keywords_blocks_x_floor"] = (
            (median(by_blocks[LOG_KEYWORDS]) - 1) * step_us / floor_block_us
        )
        summary["mapping_blocks_x_floor"] = (
            (median(by_blocks[LOG_MAPPING]) - 1) * step_us / floor_block_us
        )
        summary["blocks_share"] = median(by_blocks[LOG_KEYWORDS]) - 1
    return summary


def _run_value(shell: Shell, expression: str) -> float:
    shell.run(f"_value = {expression}")
    return float(shell["_value"])


def _summary(summaries: dict[str, dict[str, float]]) -> None:
    targets = {"0.4ms": 0.02, "10ms": 0.01}
    print("\n## Summary (targets: the call <= 2x the floor; nbtrack's whole share of a step)\n")
    rows = []
    for name, s in summaries.items():
        keywords_blocks = s.get("keywords_blocks_x_floor")
        mapping_blocks = s.get("mapping_blocks_x_floor")
        total_timed = s["call_share"] + s["beside"]
        total_mapping = s["mapping_share"] + s["beside"]
        parts = [f"{total_timed * 100:.2f} % (mapping {total_mapping * 100:.2f} %)"]
        if "blocks_share" in s:
            parts.append(f"{(s['blocks_share'] + s['beside']) * 100:.2f} % by blocks")
        rows.append(
            [
                f"{name} ({s['step_us']:,.0f} µs)",
                f"{s['keywords_x_floor']:.2f}x / {s['mapping_x_floor']:.2f}x",
                "n/a"
                if keywords_blocks is None or mapping_blocks is None
                else f"{keywords_blocks:.2f}x / {mapping_blocks:.2f}x",
                "; ".join(parts),
                f"< {targets[name] * 100:.0f} %",
                f"{s['whole'] * 100:+.2f} %",
            ]
        )
    print(
        table(
            [
                "step",
                "call / floor, timed (keywords / mapping)",
                "call / floor, blocks",
                "nbtrack's share: call + sender + upload",
                "target",
                "whole runs",
            ],
            rows,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pairs", type=int, default=6, help="tracked whole runs (6)")
    parser.add_argument(
        "--seconds", type=float, default=1.5, help="length of one 0.4 ms run, s (1.5; x2 at 10 ms)"
    )
    parser.add_argument("--blocks", type=int, default=151, help="blocks per variant, 0.4 ms")
    parser.add_argument(
        "--blocks-10ms",
        type=int,
        default=0,
        help="blocks per variant at 10 ms (0: skip; they can't resolve a µs in 10 ms)",
    )
    parser.add_argument(
        "--contention-blocks", type=int, default=61, help="blocks measuring a busy MLflow process"
    )
    parser.add_argument("--timed-steps", type=int, default=2000, help="per variant, 0.4 ms")
    parser.add_argument("--timed-steps-10ms", type=int, default=200, help="per variant, 10 ms")
    parser.add_argument("--only", choices=[c.name for c in CONFIGS], help="one step size only")
    parser.add_argument(
        "--live-view",
        action="store_true",
        help="draw the live view as in JupyterLab (NBTRACK_LIVE_PLOT=1): the sender thread then "
        "also redraws the record, at most twice a second",
    )
    parser.add_argument(
        "--pause-sync",
        action="store_true",
        help="diagnosis: stop the sync process while a tracked loop runs (it uploads right "
        "after), to tell the kernel's own cost from the sync process competing for the CPU",
    )
    args = parser.parse_args()
    if args.pairs < 2 or args.contention_blocks < 3:
        parser.error("--pairs needs 2 or more and --contention-blocks 3 or more")

    folder = isolate("loop")
    if args.live_view:
        os.environ["NBTRACK_LIVE_PLOT"] = "1"
    shell = Shell()
    shell.run(SETUP_CELL)
    shell["_bench_cpu"] = _cpu_seconds
    # A first tracked cell creates the store and starts the sync process, untimed.
    shell.run(f"_train((128, 256, 32), 100, {LOG_KEYWORDS})", track="-e bench-loop -n warm-up")
    import nbtrack

    nbtrack.wait(60)
    sync_pid = _worker_pid()
    if sync_pid is None:
        msg = "no sync process was started: is the tracking store a local SQLite file?"
        raise RuntimeError(msg)
    summaries = {}
    for config in CONFIGS:
        if args.only in (None, config.name):
            summaries[config.name] = measure(shell, folder, config, args, sync_pid)
    _summary(summaries)


if __name__ == "__main__":
    main()
