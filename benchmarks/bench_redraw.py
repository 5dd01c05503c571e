"""Live plot: what one redraw costs and sends as a run grows, and what a skipped update costs.

    python benchmarks/bench_redraw.py

Runs in-process with real ipywidgets/plotly objects; a comm that keeps the bytes ipywidgets
would put on the wire stands in for the frontend. Prints per-redraw time and payload for curves
of 1k to 200k points, and the ratios that should stay near 1 (payload) or small (time).
"""

from __future__ import annotations

import os
import time
from typing import Any

import comm
import numpy as np
from comm.base_comm import BaseComm

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from nbtrack._curves import Curve
from nbtrack.run import Run
from nbtrack.sinks import plot

N_METRICS = 8
SIZES = (1_000, 10_000, 100_000, 200_000)


class _Wire(BaseComm):
    sent = 0

    def publish_msg(
        self,
        msg_type: str,
        data: Any = None,
        metadata: Any = None,  # noqa: ARG002 - part of the comm interface
        buffers: Any = None,
        **keys: Any,  # noqa: ARG002
    ) -> None:
        if msg_type == "comm_msg":
            _Wire.sent += len(repr(data)) + sum(len(memoryview(b).cast("B")) for b in buffers or [])


def _run_with(points: int) -> Run:
    run = Run(run_name="bench", experiment_name="bench", tracking_uri="sqlite:///unused.db")
    rng = np.random.default_rng(0)
    for i in range(N_METRICS):
        curve = run.curves[f"metric_{i}/loss"] = Curve()
        curve.extend(np.arange(points), rng.random(points))
    return run


def _touch(run: Run, step: int) -> None:
    for curve in run.curves.values():
        curve.extend([step], [0.5])


def main() -> None:
    comm.create_comm = _Wire  # type: ignore[assignment]
    plot._start_plotly_import()
    plot._plotly_imported.wait()
    print(f"{N_METRICS} metrics; per redraw: time and bytes sent (all curves changed)")
    results = {}
    for points in SIZES:
        run = _run_with(points)
        live = plot.LivePlot(run)
        live.update(run)  # builds the chart
        times, sizes = [], []
        for repeat in range(10):
            _touch(run, points + repeat)
            live._next_draw = 0.0
            _Wire.sent = 0
            started = time.perf_counter()
            live.update(run)
            times.append(time.perf_counter() - started)
            sizes.append(_Wire.sent)
        live.close()
        results[points] = (float(np.median(times)), int(np.median(sizes)))
        print(f"  {points:>7,} points/curve: {results[points][0] * 1e3:7.1f} ms  "
              f"{results[points][1] / 1e3:7.1f} KB")  # fmt: skip

    run = _run_with(200_000)
    live = plot.LivePlot(run)
    live.update(run)
    _touch(run, 10**6)  # a change arrives inside the throttle interval: not due yet
    calls = 100_000
    started = time.perf_counter()
    for _ in range(calls):
        live.update(run)
    skipped = (time.perf_counter() - started) / calls
    live.close()

    small, large = results[SIZES[0]], results[SIZES[-1]]
    print(f"update() when no redraw is due: {skipped * 1e6:.1f} µs")
    print(
        f"ratio 200k/1k points: payload {large[1] / small[1]:.2f}x, time {large[0] / small[0]:.1f}x"
    )


if __name__ == "__main__":
    main()
