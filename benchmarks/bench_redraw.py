"""The live view and the record: what one redraw costs and sends as a run grows, and what the
final record (with its PNG) costs and adds to the notebook.

    python benchmarks/bench_redraw.py

The live view is the run's record bundle redrawn in place (``nbtrack.view.live``): each redraw
builds the record from the run's curves. This times that build for 8 metrics of 1k to 200k
points each, and for 1,000 and 10,000 metrics, as live redraws (no PNG) and as the final record
(PNG included), and prints the bytes each adds to a saved notebook. Import and draw time of the
PNG rasteriser (resvg) are printed too.
"""

from __future__ import annotations

import os
import sys
import time

import nbformat
import numpy as np

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from _common import fmt, median, table

from nbtrack._curves import Curve
from nbtrack.record import RecordSource, build_bundle

START_S = 1_763_779_200.0


def _curves(n_metrics: int, points: int) -> dict[str, Curve]:
    rng = np.random.default_rng(0)
    steps = np.arange(points, dtype=float)
    curves = {}
    for i in range(n_metrics):
        curve = Curve()
        values = rng.standard_normal(points).cumsum()  # the worst case for decimation
        for first in range(0, points, 4096):
            part = slice(first, first + 4096)
            curve.extend(steps[part], values[part], START_S + steps[part] * 0.01)
        curves[f"layer{i}/loss" if n_metrics > 8 else f"metric{i}/loss"] = curve
    return curves


def _source(curves: dict[str, Curve]) -> RecordSource:
    return RecordSource(
        run_id="5f3c1a2b9d8e4f70a1b2c3d4e5f60718", run_name="bench", experiment_id="1",
        experiment_name="bench", status="RUNNING", start_time_ms=int(START_S * 1000),
        end_time_ms=None, tracking_uri=None, ui_url=None, notebook_path="b.ipynb", cell_id=None,
        params={"lr": "0.003"}, curves=curves,
    )  # fmt: skip


def _saved_bytes(bundle: dict[str, object]) -> int:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x")])
    empty = len(nbformat.writes(notebook).encode())
    notebook.cells[0].outputs = [nbformat.v4.new_output("display_data", data=bundle)]
    return len(nbformat.writes(notebook).encode()) - empty


def _time(source: RecordSource, *, png: bool, repeat: int = 5) -> tuple[float, dict[str, object]]:
    times = []
    bundle: dict[str, object] = {}
    for _ in range(repeat):
        start = time.perf_counter()
        bundle = build_bundle(source, png=png)
        times.append(time.perf_counter() - start)
    return median(times) * 1000, bundle


def main() -> int:
    start = time.perf_counter()
    import resvg_py  # noqa: F401 - its import time is the figure

    import_ms = (time.perf_counter() - start) * 1000
    rows = []
    cases = [(8, n) for n in (1_000, 10_000, 100_000, 200_000)] + [(1_000, 50), (10_000, 50)]
    for n_metrics, points in cases:
        source = _source(_curves(n_metrics, points))
        live_ms, live = _time(source, png=False)
        final_ms, final = _time(source, png=True, repeat=3)
        rows.append(
            [
                f"{n_metrics:,} metrics x {points:,} points",
                fmt(live_ms),
                f"{_saved_bytes(live) / 1024:.0f}",
                fmt(final_ms),
                f"{_saved_bytes(final) / 1024:.0f}",
                f"{len(str(final.get('image/png', ''))) * 3 / 4 / 1024:.1f}",
            ]
        )
    print(f"resvg-py import: {import_ms:.1f} ms (PNG draw time is final - live)\n")
    print(
        table(["run", "live redraw ms", "live KB", "final record ms", "final KB", "PNG KB"], rows)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
