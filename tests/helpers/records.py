"""Run records written by hand after docs/record-schema.md, and notebooks that show them.

The browser tests must not depend on the kernel side to produce records, so these build
schema-2 documents directly, with curves shaped like real training (a decaying loss, a
rising accuracy).
"""

from __future__ import annotations

import math
from typing import Any

import nbformat
import numpy as np

from nbtrack._curves import Curve
from nbtrack._model import RunFailure
from nbtrack.record import RecordSource, build_bundle

# nbformat ships no type hints.
nbf: Any = nbformat.v4

MIME = "application/vnd.nbtrack.run+json"
UI = "http://127.0.0.1:5000/"


def curve(kind: str, steps: int, scale: float = 1.0, noise: float = 0.0) -> dict[str, Any]:
    """A curve over `steps` steps: "loss" decays towards 0.1*scale, "acc" rises towards 0.95."""
    values = []
    for i in range(steps):
        wobble = noise * math.sin(i * 1.7)
        if kind == "loss":
            values.append(scale * (0.1 + 2.2 * math.exp(-i / (steps / 4)) + wobble))
        else:
            values.append(0.95 - 0.6 * math.exp(-i / (steps / 3)) + wobble)
    return {"steps": list(range(steps)), "values": values}


def metric(points: dict[str, Any], goal: str | None) -> dict[str, Any]:
    values = points["values"]
    best_index = None
    if goal is not None:
        best_index = values.index(min(values) if goal == "min" else max(values))
    return {
        "last": values[-1],
        "last_step": points["steps"][-1],
        "min": min(values),
        "max": max(values),
        "goal": goal,
        "best": None if best_index is None else values[best_index],
        "best_step": None if best_index is None else points["steps"][best_index],
        "count": len(values),
        "nonfinite": 0,
        "curve": points,
    }


def record(
    run_id: str,
    name: str,
    *,
    start: int,
    params: dict[str, str],
    metrics: dict[str, Any],
    status: str = "FINISHED",
    error: dict[str, Any] | None = None,
    ui_url: str | None = None,
    panels: list[list[str]] | None = None,
) -> dict[str, Any]:
    """A schema-2 record of a run of experiment 1 that took a minute; without ``panels``, one
    chart panel per metric."""
    return {
        "schema": 2,
        "nbtrack_version": "0.1.0",
        "run": {
            "id": run_id,
            "name": name,
            "experiment_id": "1",
            "experiment_name": "demo",
            "status": status,
            "start_time": start,
            "end_time": start + 60_000,
            "duration_s": 60.0,
        },
        "tracking_uri": "sqlite:///mlflow.db",
        "ui_url": ui_url if ui_url is not None else f"{UI}#/experiments/1/runs/{run_id}",
        "notebook": {"path": "runs.ipynb", "cell_id": None},
        "params": params,
        "metrics": metrics,
        "panels": panels if panels is not None else [[name] for name in metrics],
        "error": error,
        "sync": {"state": "synced", "pending_points": 0},
    }


def training_record(
    run_id: str, name: str, start: int, lr: str, steps: int = 120
) -> dict[str, Any]:
    """A finished run with train/val loss (one panel), accuracy, and a value on another scale,
    grouped as nbtrack groups them."""
    slow = float(lr) < 0.002
    return record(
        run_id,
        name,
        start=start,
        params={"lr": lr, "epochs": "10", "batch_size": "64", "optimizer": "adam"},
        metrics={
            "train/loss": metric(curve("loss", steps, 1.3 if slow else 1.0, 0.02), "min"),
            "val/loss": metric(curve("loss", steps, 1.5 if slow else 1.1), "min"),
            "val/acc": metric(curve("acc", steps), "max"),
            "grad_norm": metric(curve("loss", steps, 400.0), None),
        },
        panels=[["train/loss", "val/loss"], ["val/acc"], ["grad_norm"]],
    )


def record_cell(doc: dict[str, Any], source: str = "%%track\n...") -> Any:
    """A code cell whose saved output is the record bundle, with the fallbacks a writer adds.

    The text/html fallback carries a marker class so tests can tell it was not used.
    """
    cell = nbf.new_code_cell(source)
    cell.outputs = [
        nbf.new_output(
            "display_data",
            data={
                MIME: doc,
                "text/html": '<p class="nbtrack-test-html-fallback">run record (HTML)</p>',
                "text/plain": f"nbtrack run {doc['run']['name']}",
            },
        )
    ]
    cell.execution_count = 1
    return cell


def training_bundle(status: str) -> dict[str, object]:
    """A realistic finished or interrupted run, rendered by build_bundle (20k steps)."""
    rng = np.random.default_rng(3)
    steps = np.arange(20_000)
    curves = {name: Curve() for name in ("train/loss", "val/loss", "val/acc")}
    train = 2.3 * np.exp(-steps / 4000) + 0.08 + 0.04 * rng.standard_normal(len(steps))
    curves["train/loss"].extend(steps.tolist(), train.tolist())
    epochs = np.arange(0, 20_000, 2000)
    curves["val/loss"].extend(epochs.tolist(), (2.1 * np.exp(-epochs / 4500) + 0.15).tolist())
    curves["val/acc"].extend(epochs.tolist(), (0.98 - 0.8 * np.exp(-epochs / 3000)).tolist())
    error = RunFailure("KeyboardInterrupt", "") if status == "KILLED" else None
    source = RecordSource(
        run_id="5f3c1a2b9d8e4f70a1b2c3d4e5f60718",
        run_name="mlp-baseline",
        experiment_id="1",
        experiment_name="mnist-mlp",
        status=status,
        start_time_ms=1_763_779_200_000,
        end_time_ms=1_763_779_200_000 + 754_000,
        tracking_uri="http://alice:hunter2@127.0.0.1:5000",
        ui_url="http://127.0.0.1:5000/#/experiments/1/runs/5f3c1a2b9d8e4f70a1b2c3d4e5f60718",
        notebook_path="train.ipynb",
        cell_id="a1b2c3",
        params={"lr": "0.003", "epochs": "10", "hidden": "256", "optimizer": "adam"},
        curves=curves,
        error=error,
    )
    return build_bundle(source)
