"""What keeping threads of ended runs out of later runs costs ``nbtrack.log`` in a training loop.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_threads.py [--steps 30000]

A small CPU MLP trains one step at a time (one thread, ~0.5 ms a step), and after each step one
of these calls is timed around itself, as ``bench_loop.py`` does, where every step has just
evicted the caches. They take turns in segments of 100 steps, so that drifts of the machine
spread over all of them:

- *floor*: ``loss.item()`` and a timestamped tuple appended to a list, the least a tracker in
  Python does per step;
- *log*: ``nbtrack.log(loss=loss, lr=..., progress=...)`` in a run of the usual kind, where no
  thread of an ended run logs: the rule about threads costs it nothing (no check on its path);
- *log, guarded run*: the same call in a run started while a thread of an earlier run that
  logged is still alive. Its names are then checked with the calling thread, a Python call more
  per ``log``; a run is guarded only while such a thread lives.

Prints the median ns per call (net of a no-op call timed the same way: a median, because on a
shared machine some calls include a preemption) and the ratio to the floor. The budget is the
usual call under 2x the floor. About a minute. No IPython, no store: the runs are registered the
way a tracked cell registers them, and what they buffer is dropped every 1,000 calls.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
from pathlib import Path
from time import perf_counter_ns, time
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import table

import nbtrack
from nbtrack import _buffer, _registry
from nbtrack._buffer import Buffer
from nbtrack._model import Batch, Run
from nbtrack._registry import TrackedRun


class _Discard:
    def update(self, run: Run, batch: Batch) -> None:
        pass


def _run(name: str) -> TrackedRun:
    buffer = Buffer()
    buffer.limit = 1000
    buffer.overflow = buffer.calls.clear
    tracked = TrackedRun(Run(name, "bench", "sqlite:///unused.db"), buffer, _Discard())
    _registry.activate(tracked)
    _registry.forget(tracked)  # no sender thread here
    return tracked


def _guarded_run() -> tuple[TrackedRun, threading.Event]:
    """A run started while a thread of an ended run that logged still lives."""
    earlier = _run("earlier")
    release = threading.Event()

    def helper() -> None:
        nbtrack.log(helper_metric=1.0)
        release.wait()

    thread = threading.Thread(target=helper, daemon=True)
    thread.start()
    while not earlier.buffer.helpers:
        threading.Event().wait(0.001)
    _registry.deactivate(earlier)
    guarded = _run("guarded")
    assert guarded.buffer.guarded
    _registry.deactivate(guarded)
    return guarded, release


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30_000)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(128, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(32, 128), torch.randint(0, 10, (32,))
    lossf = torch.nn.functional.cross_entropy

    usual = _run("usual")
    _registry.deactivate(usual)
    assert not usual.buffer.guarded
    guarded, release = _guarded_run()
    kept: list[Any] = []

    def noop(loss: Any, lr: float, progress: float) -> None:
        pass

    def floor(loss: Any, lr: float, progress: float) -> None:
        kept.append((None, time(), {"loss": loss.item(), "lr": lr, "progress": progress}))
        if len(kept) >= 1000:
            kept.clear()

    # Called as it is, like the floor: no wrapper around it.
    log = nbtrack.log

    variants = [
        ("no-op", noop, usual.buffer),
        ("floor: loss.item() + list append", floor, usual.buffer),
        ("nbtrack.log, usual run", log, usual.buffer),
        ("nbtrack.log, guarded run", log, guarded.buffer),
        ("nbtrack.log, usual run (again: the noise)", log, usual.buffer),
    ]
    timings: list[list[int]] = [[] for _ in variants]
    segment = 100
    for i in range(args.steps):
        optimizer.zero_grad(set_to_none=True)
        loss = lossf(model(x), y)
        loss.backward()
        optimizer.step()
        which = i // segment % len(variants)
        _, call, buffer = variants[which]
        _buffer.active = buffer
        start = perf_counter_ns()
        call(loss=loss, lr=0.01, progress=i / args.steps)
        timings[which].append(perf_counter_ns() - start)
    _buffer.active = None
    release.set()

    # Medians: on a shared machine a few calls include a preemption, which would swamp a mean.
    typical = [statistics.median(times) for times in timings]
    net = [t - typical[0] for t in typical]
    rows = [
        [name, f"{ns:,.0f}", f"{ns / net[1]:.2f}"]
        for (name, _, _), ns in zip(variants[1:], net[1:], strict=True)
    ]
    print(table(["call after each training step", "ns/call", "x floor"], rows))


if __name__ == "__main__":
    main()
