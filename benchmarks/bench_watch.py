"""``nbtrack.watch`` inside a real CPU training loop, against the same loop without it.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_watch.py [--pairs 6] [--steps 2000]

The 0.4 ms step of bench_loop.py (a 128-256-256-10 MLP, batch 32, SGD with momentum, one
thread), in tracked cells of a real IPython shell, each logging its loss, two ways:

- whole cells without ``watch`` and with ``nbtrack.watch(model, optimizer, every=100)`` take
  turns, each watched cell against the mean of its two neighbours;
- inside one cell, 200-step blocks alternate without and with the watch's hooks attached,
  each watched block against its two neighbours (finer: less drift between the two);

each next to a control (the same estimator on unwatched cells or blocks alone). Also measured
alone:

- the hook between sampled steps (what ``watch`` adds to 99 steps in 100): a call of the
  optimizer's step pre-hook that only counts, timed over a million calls;
- a sampled step's work (the norms of every gradient and weight, per module and global, and
  the learning rate, handed to ``nbtrack.log``), timed over a few hundred samples.

Prints per-step times and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Shell, fmt, isolate, median, table

SETUP = """
import time, torch, nbtrack
torch.set_num_threads(1)
torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Linear(128, 256), torch.nn.ReLU(),
    torch.nn.Linear(256, 256), torch.nn.ReLU(),
    torch.nn.Linear(256, 10),
)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x = torch.randn(32, 128)
y = torch.randint(0, 10, (32,))

def train(steps):
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        nbtrack.log(loss=loss)
    return (time.perf_counter() - start) / steps
"""

BLOCKS = """
from nbtrack.integrations.watch import _Watcher
blocks = {blocks}
watcher = _Watcher(model, optimizer, 100, "model")
block_times = []
for i in range(2 * blocks + 1):
    if i % 2:
        watcher.count = 0
        watcher.attach()
    block_times.append(train(200))
    watcher.detach()
"""

HOOK_ALONE = """
from nbtrack.integrations.watch import _Watcher
counting = _Watcher(model, optimizer, 10**12, "model")
counting.count = 1                     # past step 0: every call only counts
n = 1_000_000
start = time.perf_counter()
for _ in range(n):
    counting._before_optimizer_step(optimizer, (), {})
hook_s = (time.perf_counter() - start) / n
start = time.perf_counter()
for _ in range(n):
    pass
hook_s -= (time.perf_counter() - start) / n
sampling = _Watcher(model, optimizer, 1, "model")
optimizer.zero_grad()
torch.nn.functional.cross_entropy(model(x), y).backward()
samples = 300
start = time.perf_counter()
for _ in range(samples):
    sampling._before_optimizer_step(optimizer, (), {})
sample_s = (time.perf_counter() - start) / samples
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6, help="watched cells (default 6)")
    parser.add_argument("--steps", type=int, default=2000, help="steps per cell (default 2000)")
    parser.add_argument(
        "--blocks", type=int, default=40, help="watched 200-step blocks in one cell (default 40)"
    )
    args = parser.parse_args()
    isolate("watch")
    shell = Shell()
    shell.run(SETUP)
    shell.run("train(200)", track="-e bench-watch -n warm-up")  # sync process, first cell costs
    plain: list[float] = []
    watched: list[float] = []
    for i in range(2 * args.pairs + 1):
        with_watch = i % 2 == 1
        code = "nbtrack.watch(model, optimizer, every=100)\n" if with_watch else ""
        shell.run(f"{code}per_step = train({args.steps})", track=f"-e bench-watch -n cell-{i}")
        (watched if with_watch else plain).append(shell["per_step"])
    ratios = [w / ((plain[i] + plain[i + 1]) / 2) for i, w in enumerate(watched)]
    controls = [plain[i + 1] / ((plain[i] + plain[i + 2]) / 2) for i in range(len(plain) - 2)]
    shell.run(BLOCKS.format(blocks=args.blocks), track="-e bench-watch -n blocks")
    times = shell["block_times"]
    block_ratios = [times[i] / ((times[i - 1] + times[i + 1]) / 2) for i in range(1, len(times), 2)]
    block_controls = [
        times[i] / ((times[i - 2] + times[i + 2]) / 2) for i in range(2, len(times) - 2, 2)
    ]
    shell.run(HOOK_ALONE, track="-e bench-watch -n hook-alone")
    step = median(plain)
    hook, sample = shell["hook_s"], shell["sample_s"]
    print(f"\nnbtrack.watch(model, optimizer, every=100) in a {fmt(step * 1e3)} ms CPU step "
          f"({args.steps} steps a cell, {args.pairs} watched cells)\n")  # fmt: skip
    print(
        table(
            ["what", "per step", "vs the step without watch"],
            [
                ["step without watch (median)", f"{fmt(step * 1e6)} µs", "1"],
                ["step with watch (median)", f"{fmt(median(watched) * 1e6)} µs",
                 f"{median(ratios):.3f}x (cells: {', '.join(f'{r:.3f}' for r in ratios)})"],
                ["control: a plain cell against its neighbours", "",
                 f"{median(controls):.3f}x" if controls else "n/a"],
                ["200-step blocks with watch, against their neighbours", "",
                 f"{median(block_ratios):.4f}x ({len(block_ratios)} blocks)"],
                ["control: a plain block against its plain neighbours", "",
                 f"{median(block_controls):.4f}x"],
                ["the hook between sampled steps (alone)", f"{fmt(hook * 1e9)} ns",
                 f"{hook / step * 100:.3f} %"],
                ["a sampled step's work (alone)", f"{fmt(sample * 1e6)} µs",
                 f"{sample / step * 100:.1f} % of one step, "
                 f"{sample / step:.2f} % per step at every=100"],
            ],
        )
    )  # fmt: skip
    time.sleep(0.1)


if __name__ == "__main__":
    main()
