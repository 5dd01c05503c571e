"""The record a finished tracked cell leaves in the notebook: its size, and what building it costs.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_record.py

The record is one display bundle (JSON for the lab extension, HTML, SVG, text) whose curves are
decimated (min/max per bucket) to a bounded number of points. For runs of 3 metrics x 100k
steps (random walks: the worst case for decimation, every bucket has distinct extremes) to 200
metrics x 10k steps, this prints what the record adds to a saved ``.ipynb`` (written with
nbformat, against the same notebook without the output), per MIME type, and the time to build
it; and the time of one ``decimate`` call, 200k points to 1,000. Target: a record under 100 KB
however many points or metrics. In-process, a few seconds.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median, table

CASES = ((3, 100_000), (3, 1_000_000), (8, 100_000), (50, 100_000), (200, 10_000))
_NAMES = ("train/loss", "val/loss", "train/acc", "val/acc", "lr", "grad_norm", "epoch", "time")


def _run(metrics: int, steps: int) -> Any:
    import numpy as np

    from nbtrack._curves import Curve
    from nbtrack._model import Run, Status

    run = Run(run_name="bench", experiment_name="bench", tracking_uri="sqlite:///unused.db")
    run.run_id, run.experiment_id = "5f3c1a2b" * 4, "1"
    run.add_params({"lr": "0.003", "epochs": "5", "batch_size": "64"})
    run.status = Status.FINISHED
    run.end_time_ms = run.start_time_ms + 62_500
    run.sync_state = "synced"
    rng = np.random.default_rng(0)
    chunk = 100_000  # fed as the sender does, a batch at a time
    for i in range(metrics):
        name = _NAMES[i] if i < len(_NAMES) else f"layer_{i}/grad_norm"
        curve = run.curves[name] = Curve()
        for start in range(0, steps, chunk):
            size = min(chunk, steps - start)
            walk = rng.standard_normal(size).cumsum()
            curve.extend(np.arange(start, start + size, dtype=float), walk)
    return run


def _notebook_bytes(bundle: dict[str, Any] | None) -> int:
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("train()")])
    if bundle is not None:
        notebook.cells[0].outputs = [nbformat.v4.new_output("display_data", data=bundle)]
    return len(nbformat.writes(notebook).encode())


def _mime_bytes(bundle: dict[str, Any], mime: str) -> int:
    return _notebook_bytes({mime: bundle[mime]}) - _notebook_bytes(None)


def main() -> None:
    import numpy as np

    from nbtrack._decimate import decimate
    from nbtrack.view.live import record_bundle

    rows = []
    mimes: list[str] = []
    largest = 0
    for metrics, steps in CASES:
        run = _run(metrics, steps)
        record_bundle(run)  # the first build imports the record's modules
        times = []
        for _ in range(5):
            started = time.perf_counter()
            bundle = record_bundle(run)
            times.append(time.perf_counter() - started)
        mimes = mimes or sorted(bundle)
        added = _notebook_bytes(bundle) - _notebook_bytes(None)
        largest = max(largest, added)
        rows.append(
            [
                f"{metrics} x {steps:,}",
                f"{added / 1024:.1f}",
                *(f"{_mime_bytes(bundle, mime) / 1024:.1f}" for mime in mimes),
                f"{median(times) * 1e3:.1f}",
            ]
        )
    print("Record of a finished run in a saved notebook (random-walk curves):\n")
    print(
        table(
            [
                "metrics x steps",
                "KiB added to the .ipynb",
                *(f"KiB {mime}" for mime in mimes),
                "ms to build",
            ],
            rows,
        )
    )
    print(f"\nlargest record: {largest / 1024:.1f} KiB (target < 100 KB)")

    rng = np.random.default_rng(0)
    steps = np.arange(200_000, dtype=np.float64)
    values = rng.standard_normal(len(steps)).cumsum()
    decimate(steps, values, 1000)
    calls = []
    for _ in range(50):
        started = time.perf_counter()
        out_steps, _ = decimate(steps, values, 1000)
        calls.append(time.perf_counter() - started)
    assert len(out_steps) == 1000
    print(f"decimate 200k -> 1,000 points: {median(calls) * 1e3:.3f} ms per call (median of 50)")


if __name__ == "__main__":
    main()
