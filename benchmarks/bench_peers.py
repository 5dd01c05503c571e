"""nbtrack against other experiment trackers, all local and offline, measured in one process.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_peers.py [--blocks 41] [--only trackio ...]

Peers (installed by ``pip install -e '.[bench]'``): trackio, TensorBoard's ``SummaryWriter``
(``torch.utils.tensorboard``), wandb in offline mode, MLflow synchronous, MLflow asynchronous
with ``MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS=1``, and DVCLive. Each writes into this run's
temporary folder; nothing leaves the machine (run it under ``unshare -n`` to prove it, see
benchmarks/README.md). nbtrack runs the real way: an IPython ``InteractiveShell`` with
``%load_ext nbtrack`` and ``%%track`` cells, its sync process uploading into MLflow's SQLite.

Every tracker logs three metrics per step (``loss``, ``lr``, ``progress``) the way its
documentation shows: nbtrack gets the loss tensor as it is, the others ``float(loss)``. For each
tracker, in the same run:

1. Per step inside a real training loop (a 128-256-256-10 MLP, batch 32, one thread, ~0.4 ms a
   step): blocks of steps alternate without and with the tracker's call, each "with" block
   against its two neighbours (what the call costs, the steps after it included, and the
   tracker's threads and processes competing for the machine), and each call timed around
   itself (its own cost, steadier). A control runs a no-op function the same way.
2. Per point in a tight loop of floats (no training): what the call alone costs (the median
   of five chunks of the loop).
3. Run setup (the time until the logger is ready: in a first run of the process, which logs 10
   steps, and in a later one; the package's import apart), and the finish until the data is
   durable (close, flush, wait), after the tight loop and after the training loop.

About a minute with the defaults.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Shell, fmt, isolate, median, table

OFFLINE_ENV = {
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "HF_HUB_OFFLINE": "1",
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    # DVC's and DVCLive's own switches for the same (DO_NOT_TRACK covers only some versions).
    "DVC_NO_ANALYTICS": "1",
    "ITERATIVE_DO_NOT_TRACK": "1",
    "DVC_STUDIO_OFFLINE": "true",
}

SETUP_CELL = """
import os, torch
from time import perf_counter as _perf_counter, perf_counter_ns as _ns
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
    for _ in range(20):  # first steps allocate; keep them out of the timing
        optimizer.zero_grad(set_to_none=True)
        lossf(model(x), y).backward()
        optimizer.step()
    return model, optimizer, x, y, lossf

def _blocks(step_log, n_blocks, block_steps):
    # Odd blocks call `step_log(loss, i)` after each step, even blocks do not; both time the
    # statement after the step (the call, or nothing) around itself.
    model, optimizer, x, y, lossf = _model()
    times, on_ns, off_ns = [], 0, 0
    i = 0
    for b in range(n_blocks):
        on = b % 2 == 1
        start = _perf_counter()
        for _ in range(block_steps):
            optimizer.zero_grad(set_to_none=True)
            loss = lossf(model(x), y)
            loss.backward()
            optimizer.step()
            if on:
                t = _ns()
                step_log(loss, i)
                on_ns += _ns() - t
                i += 1
            else:
                t = _ns()
                off_ns += _ns() - t
        times.append(_perf_counter() - start)
    on_steps = (n_blocks // 2) * block_steps
    off_steps = (n_blocks - n_blocks // 2) * block_steps
    # Per-block times, and the call's own ns per step net of the timer alone.
    return times, on_ns / on_steps - off_ns / off_steps

def _tight(step_log, steps, chunks=5):
    # Seconds per step: the median of `chunks` equal chunks, so that a chunk during which a
    # background thread of the tracker held the GIL (nbtrack's sender wakes every 0.5 s) or
    # the machine was busy elsewhere does not decide the figure.
    size = steps // chunks
    times = []
    for chunk in range(chunks):
        start = _perf_counter()
        for i in range(chunk * size, (chunk + 1) * size):
            step_log(0.25, i)
        times.append(_perf_counter() - start)
    return sorted(times)[chunks // 2] / size

def _nothing(loss, i):
    pass
"""


@dataclass(frozen=True)
class Peer:
    """A tracker as its documentation shows it: import, start a run, log a step, finish."""

    name: str
    imports: str
    init: str  # {name}: the run's name; {folder}: this benchmark's temporary folder
    step: str  # defines `_step(loss, i)`
    finish: str
    tight_steps: int  # steps of the tight loop (fewer for slow trackers)


PEERS = (
    Peer(
        "trackio",
        imports="import trackio",
        init="_run = trackio.init(project='bench', name={name!r}, embed=False)",
        step=(
            "def _step(loss, i):\n"
            "    _run.log({{'loss': float(loss), 'lr': 0.01, 'progress': i / 1e5}}, step=i)"
        ),
        finish="_run.finish()",
        tight_steps=5_000,
    ),
    Peer(
        "TensorBoard SummaryWriter",
        imports="from torch.utils.tensorboard import SummaryWriter",
        init="_writer = SummaryWriter(log_dir={folder!r} + '/tensorboard/' + {name!r})",
        step=(
            "def _step(loss, i):\n"
            "    _writer.add_scalar('loss', float(loss), i)\n"
            "    _writer.add_scalar('lr', 0.01, i)\n"
            "    _writer.add_scalar('progress', i / 1e5, i)"
        ),
        finish="_writer.close()",
        tight_steps=3_000,
    ),
    Peer(
        "wandb offline",
        imports="import wandb",
        init=(
            "_run = wandb.init(project='bench', name={name!r}, mode='offline', dir={folder!r}, "
            "settings=wandb.Settings(console='off'))"
        ),
        step=(
            "def _step(loss, i):\n"
            "    _run.log({{'loss': float(loss), 'lr': 0.01, 'progress': i / 1e5}}, step=i)"
        ),
        finish="_run.finish()",
        tight_steps=1_000,
    ),
    Peer(
        "MLflow sync",
        imports="import mlflow",
        init=(
            "os.environ.pop('MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS', None)\n"
            "mlflow.set_tracking_uri('sqlite:///' + {folder!r} + '/mlflow-sync.db')\n"
            "mlflow.set_experiment('bench')\n"
            "_run = mlflow.start_run(run_name={name!r})"
        ),
        step=(
            "def _step(loss, i):\n"
            "    mlflow.log_metrics({{'loss': float(loss), 'lr': 0.01, 'progress': i / 1e5}},"
            " step=i)"
        ),
        finish="mlflow.end_run()",
        tight_steps=100,
    ),
    Peer(
        "MLflow async (buffering 1 s)",
        imports="import mlflow",
        init=(
            "os.environ['MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS'] = '1'\n"
            "mlflow.set_tracking_uri('sqlite:///' + {folder!r} + '/mlflow-async.db')\n"
            "mlflow.set_experiment('bench')\n"
            "_run = mlflow.start_run(run_name={name!r})"
        ),
        step=(
            "def _step(loss, i):\n"
            "    mlflow.log_metrics(\n"
            "        {{'loss': float(loss), 'lr': 0.01, 'progress': i / 1e5}}, step=i,"
            " synchronous=False\n"
            "    )"
        ),
        finish="mlflow.flush_async_logging()\nmlflow.end_run()",
        tight_steps=1_000,
    ),
    Peer(
        "DVCLive",
        imports="from dvclive import Live",
        init=(
            "_live = Live(dir={folder!r} + '/dvclive/' + {name!r}, save_dvc_exp=False, "
            "dvcyaml=None)"
        ),
        step=(
            "def _step(loss, i):\n"
            "    _live.log_metric('loss', float(loss))\n"
            "    _live.log_metric('lr', 0.01)\n"
            "    _live.log_metric('progress', i / 1e5)\n"
            "    _live.next_step()"
        ),
        finish="_live.end()",
        tight_steps=100,
    ),
)

NBTRACK_STEP = (
    "def _step(loss, i):\n    nbtrack.log(loss=loss, lr=0.01, progress=i / 1e5)"
)  # fmt: skip
NBTRACK_TIGHT_STEPS = 10_000


@dataclass
class Result:
    import_s: float | None = 0.0  # None: imported already (by an earlier peer)
    setup_first_s: float = 0.0
    setup_later_s: float = 0.0
    tight_us_per_point: float = 0.0
    tight_steps: int = 0
    finish_tight_s: float = 0.0
    finish_loop_s: float = 0.0
    timed_us: float = 0.0  # per step in the training loop, timed around the call
    block_ratios: tuple[float, ...] = ()
    note: str = ""


def _median_ci(ratios: list[float], resamples: int = 4000) -> tuple[float, float, float]:
    pick = random.Random(0).choices  # noqa: S311 - resampling, not secrets
    medians = sorted(median(pick(ratios, k=len(ratios))) for _ in range(resamples))
    return median(ratios), medians[int(0.025 * resamples)], medians[int(0.975 * resamples)]


def _between(times: list[float]) -> list[float]:
    return [times[i] / ((times[i - 1] + times[i + 1]) / 2) for i in range(1, len(times) - 1, 2)]


def _blocks_cell(n_blocks: int, block_steps: int, step: str = "_step") -> str:
    return f"_times, _own_ns = _blocks({step}, {n_blocks}, {block_steps})"


def _runs(args: argparse.Namespace, tight_steps: int) -> tuple[str, str, str]:
    """The bodies of a tracker's three runs: the first in the process logs a few steps (its
    setup is the cold one; what starts in the background then is out of the way of the
    others), the second a tight loop of floats, the third trains."""
    return (
        "_elapsed = _tight(_step, 10, 1)",
        f"_elapsed = _tight(_step, {tight_steps})",
        _blocks_cell(args.blocks, args.block_steps),
    )


def measure_nbtrack(shell: Shell, args: argparse.Namespace) -> Result:
    """Three ``%%track`` cells (see ``_runs``). A cell's end does not wait for the upload here
    (``NBTRACK_END_WAIT=0``, as where a person watches); ``nbtrack.wait()`` after it is the rest
    of the way into MLflow."""
    import nbtrack

    result = Result(import_s=shell.load_ext_s, tight_steps=NBTRACK_TIGHT_STEPS)
    finishes = []
    for index, body in enumerate(_runs(args, NBTRACK_TIGHT_STEPS)):
        cell = f"_t_body = _perf_counter()\n{NBTRACK_STEP}\n{body}\n_t_end = _perf_counter()"
        started = time.perf_counter()
        shell.run(cell, track=f"-e bench-peers -n nbtrack-{index}")
        ended = time.perf_counter()
        nbtrack.wait()
        stored = time.perf_counter()
        setup = shell["_t_body"] - started
        if index == 0:
            result.setup_first_s = setup
        elif index == 1:
            result.tight_us_per_point = shell["_elapsed"] / 3 * 1e6
            result.finish_tight_s = stored - shell["_t_end"]
        else:
            result.setup_later_s = setup
            result.finish_loop_s = stored - shell["_t_end"]
            result.timed_us = shell["_own_ns"] / 1e3
            result.block_ratios = tuple(_between(shell["_times"]))
        if index:
            finishes.append(f"{ended - shell['_t_end']:.3f} s")
    result.note = (
        f"nbtrack's cell ends returned after {' and '.join(finishes)} with the journal on disk "
        "(NBTRACK_END_WAIT=0); its finish figures run until nbtrack.wait() saw everything in "
        "MLflow's SQLite"
    )
    return result


def measure_peer(shell: Shell, peer: Peer, folder: Path, args: argparse.Namespace) -> Result:
    """Three runs of ``peer`` (see ``_runs``). Setup and finish are timed inside the cells,
    around the tracker's own calls."""
    result = Result(tight_steps=peer.tight_steps)
    module = peer.imports.split()[1]  # `import X` or `from X import Y`
    fresh = module not in sys.modules
    shell.run(f"_t0 = _perf_counter()\n{peer.imports}\n_import_s = _perf_counter() - _t0")
    result.import_s = shell["_import_s"] if fresh else None
    for index, body in enumerate(_runs(args, peer.tight_steps)):
        values = {"name": f"bench-{index}", "folder": str(folder)}
        init = peer.init.format(**values)
        step = peer.step.format(**values)
        shell.run(
            f"_t0 = _perf_counter()\n{init}\n_setup_s = _perf_counter() - _t0\n{step}\n{body}\n"
            f"_t0 = _perf_counter()\n{peer.finish}\n_finish_s = _perf_counter() - _t0"
        )
        if index == 0:
            result.setup_first_s = shell["_setup_s"]
        elif index == 1:
            result.tight_us_per_point = shell["_elapsed"] / 3 * 1e6
            result.finish_tight_s = shell["_finish_s"]
        else:
            result.setup_later_s = shell["_setup_s"]
            result.finish_loop_s = shell["_finish_s"]
            result.timed_us = shell["_own_ns"] / 1e3
            result.block_ratios = tuple(_between(shell["_times"]))
    return result


def _step_us(shell: Shell, args: argparse.Namespace) -> float:
    """The training step's own time: the median untracked block."""
    shell.run(_blocks_cell(args.blocks, args.block_steps, "_nothing"))
    return median(shell["_times"]) / args.block_steps * 1e6


def report(results: dict[str, Result], control: Result, step_us: float, logged: int) -> None:
    reference = results["nbtrack"]
    order = sorted(results, key=lambda name: results[name].timed_us)

    def blocks_us(result: Result) -> str:
        mid, low, high = ((ratio - 1) * step_us for ratio in _median_ci(list(result.block_ratios)))
        return f"{mid:,.1f}  [{low:,.1f} .. {high:,.1f}]"

    rows = [
        [
            name,
            fmt(results[name].timed_us),
            fmt(results[name].timed_us / reference.timed_us),
            blocks_us(results[name]),
            f"{(median(results[name].block_ratios) - 1) * 100:+.2f} %",
        ]
        for name in order
    ]
    rows.append(["control: a no-op function", fmt(control.timed_us), "", blocks_us(control), ""])
    print(
        f"1. Per step inside a training loop ({step_us:,.0f} µs per step untracked), 3 metrics:\n"
    )
    print(
        table(
            [
                "tracker",
                "µs per step, timed",
                "x nbtrack",
                "µs per step by blocks [95 % interval]",
                "% of a step",
            ],
            rows,
        )
    )
    others = [results[name].timed_us for name in order if name != "nbtrack"]
    if others:
        cheapest = min(others)
        print(
            f"\nthe next cheapest tracker costs {cheapest / reference.timed_us:,.1f}x nbtrack per "
            "step, timed around the call (target: at least 5x)"
        )

    order = sorted(results, key=lambda name: results[name].tight_us_per_point)
    print("\n2. Per point in a tight loop of floats (3 metrics per call, median of 5 chunks):\n")
    print(
        table(
            ["tracker", "µs per point", "x nbtrack", "steps"],
            [
                [
                    name,
                    fmt(results[name].tight_us_per_point),
                    fmt(results[name].tight_us_per_point / reference.tight_us_per_point),
                    f"{results[name].tight_steps:,}",
                ]
                for name in order
            ],
        )
    )
    print("\n3. Setup (until the logger is ready) and finish (until the data is durable), s:\n")
    print(
        table(
            [
                "tracker",
                "import",
                "setup, first run",
                "setup, later run",
                "finish after the tight loop (steps above)",
                f"finish after the training loop ({logged:,} steps)",
            ],
            [
                [
                    name,
                    "(imported)" if r.import_s is None else f"{r.import_s:.3f}",
                    f"{r.setup_first_s:.3f}",
                    f"{r.setup_later_s:.3f}",
                    f"{r.finish_tight_s:.3f}",
                    f"{r.finish_loop_s:.3f}",
                ]
                for name, r in results.items()
            ],
        )
    )
    print(
        "\n(nbtrack's import column is `%load_ext nbtrack`; its setup runs from the cell's start "
        "to its body's first line. MLflow's first setup creates its SQLite store.)"
    )
    if reference.note:
        print(reference.note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--blocks",
        type=int,
        default=41,
        help="blocks per tracker (41: 20 with the tracker, 1,000 steps logged at 50 a block)",
    )
    parser.add_argument("--block-steps", type=int, default=50, help="steps per block (50)")
    parser.add_argument(
        "--only", nargs="+", metavar="PEER", help="peers to run (by the start of their name)"
    )
    args = parser.parse_args()
    if args.blocks < 3:
        parser.error("--blocks needs 3 or more")

    folder = isolate("peers")
    os.environ.update(OFFLINE_ENV)
    for variable in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        os.environ[variable] = str(folder / "wandb")
    os.environ["WANDB_ARTIFACT_DIR"] = str(folder / "wandb" / "artifacts")
    os.environ["HF_HOME"] = str(folder / "huggingface")
    os.environ["TRACKIO_DIR"] = str(folder / "trackio")
    os.environ["NBTRACK_END_WAIT"] = "0"

    shell = Shell()
    shell.run(SETUP_CELL)
    step_us = _step_us(shell, args)
    shell.run(_blocks_cell(args.blocks, args.block_steps, "_nothing"))
    control = Result(timed_us=shell["_own_ns"] / 1e3, block_ratios=tuple(_between(shell["_times"])))
    results = {"nbtrack": measure_nbtrack(shell, args)}
    for peer in PEERS:
        if args.only and not any(peer.name.lower().startswith(p.lower()) for p in args.only):
            continue
        print(f"measuring {peer.name} ...", file=sys.stderr, flush=True)
        results[peer.name] = measure_peer(shell, peer, folder, args)
    print()
    report(results, control, step_us, logged=args.blocks // 2 * args.block_steps)


if __name__ == "__main__":
    main()
