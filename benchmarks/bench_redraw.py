"""The live view: what one redraw costs and sends as a run grows, in points and in metrics.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_redraw.py [--repeats 5]

The live view under a tracked cell is the run's record bundle (``nbtrack.record``: JSON for the
lab extension, HTML, SVG, text) redrawn in place with ``update_display``, at most once per
``NBTRACK_PLOT_INTERVAL`` (0.5 s). A redraw runs in the kernel's sender thread, beside the
training loop. For 1, 8 and 50 metrics of 1k to 200k points each, this times one redraw
(``LiveView.update`` when a redraw is due: the record built from the curves, decimated, and
published) and measures its payload (the bytes of every MIME type of the bundle), which should
stay flat however many points were logged. It also times an ``update`` that finds no redraw due
(the sender's cost on every other wake). In-process, with outputs dropped. About a minute.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Shell, isolate, median, table

METRICS = (1, 8, 50)
SIZES = (1_000, 10_000, 100_000, 200_000)


def _run_with(metrics: int, points: int) -> Any:
    import numpy as np

    from nbtrack._curves import Curve
    from nbtrack._model import Run

    run = Run(run_name="bench", experiment_name="bench", tracking_uri="sqlite:///unused.db")
    rng = np.random.default_rng(0)
    steps = np.arange(points, dtype=float)
    for i in range(metrics):
        # Curves of different scales and shapes, as a run's losses, accuracies and rates are.
        curve = run.curves[f"group_{i % 5}/metric_{i}"] = Curve()
        curve.extend(steps, (10.0 ** (i % 4)) * np.exp(-steps / points) + rng.random(points))
    return run


def _touch(run: Any, step: int) -> None:
    for curve in run.curves.values():
        curve.extend([float(step)], [0.5])


def _payload_bytes(bundle: dict[str, Any]) -> dict[str, int]:
    return {
        mime: len(value.encode() if isinstance(value, str) else json.dumps(value).encode())
        for mime, value in bundle.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=5, help="redraws timed per case (5)")
    args = parser.parse_args()

    isolate("redraw")
    Shell()  # an IPython shell whose display machinery drops outputs
    from nbtrack._model import Batch
    from nbtrack.view.live import LiveView, record_bundle

    results: dict[tuple[int, int], tuple[float, dict[str, int]]] = {}
    skipped_us: dict[int, float] = {}
    for metrics in METRICS:
        for points in SIZES:
            run = _run_with(metrics, points)
            live = LiveView(run, threading.Lock())  # draws the record once, as a cell's start
            times = []
            for repeat in range(args.repeats):
                _touch(run, points + repeat)
                live._next_draw = 0.0  # a redraw is due
                started = time.perf_counter()
                live.update(run, Batch())
                times.append(time.perf_counter() - started)
            results[metrics, points] = (median(times), _payload_bytes(record_bundle(run)))
            if points == SIZES[-1]:
                # A change inside the throttle interval: nothing is drawn (a one-shot timer
                # will draw it at the interval's end).
                live._next_draw = time.monotonic() + 3600
                calls = 2_000
                started = time.perf_counter()
                for _ in range(calls):
                    live.update(run, Batch())
                skipped_us[metrics] = (time.perf_counter() - started) / calls * 1e6
            live.finish(run)
            print(f"{metrics} metrics x {points:,} points done", file=sys.stderr, flush=True)

    mimes = sorted({mime for _, sizes in results.values() for mime in sizes})
    rows = []
    for (metrics, points), (seconds, sizes) in results.items():
        rows.append(
            [
                f"{metrics} x {points:,}",
                f"{seconds * 1e3:.1f}",
                f"{sum(sizes.values()) / 1e3:.1f}",
                *(f"{sizes.get(mime, 0) / 1e3:.1f}" for mime in mimes),
            ]
        )
    print(
        table(
            ["metrics x points each", "ms per redraw", "KB sent", *(f"KB {m}" for m in mimes)],
            rows,
        )
    )
    print()
    for metrics in METRICS:
        small, large = results[metrics, SIZES[0]], results[metrics, SIZES[-1]]
        small_kb, large_kb = sum(small[1].values()), sum(large[1].values())
        print(
            f"{metrics} metrics, 200k against 1k points each: payload {large_kb / small_kb:.2f}x, "
            f"time {large[0] / small[0]:.1f}x; an update with no redraw due: "
            f"{skipped_us[metrics]:.1f} µs"
        )
    worst = max(seconds for seconds, _ in results.values())
    print(
        f"\nat most 2 redraws a second (NBTRACK_PLOT_INTERVAL=0.5): the slowest case above uses "
        f"{2 * worst * 100:.1f} % of the kernel's time while the cell runs"
    )


if __name__ == "__main__":
    main()
