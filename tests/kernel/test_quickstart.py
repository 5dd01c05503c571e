"""The README's demo: the quickstart notebook runs headless and leaves runs and records."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers.kernels import execute

from nbtrack.record import parse_record

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.kernel

RECORD = "application/vnd.nbtrack.run+json"


def test_quickstart_notebook_trains_two_tracked_runs(store, client, tmp_path):
    path = tmp_path / "01_quickstart.ipynb"
    shutil.copy(ROOT / "example_notebooks" / "01_quickstart.ipynb", path)
    nb = execute(path)
    records = [
        parse_record(output["data"][RECORD])
        for cell in nb.cells
        for output in cell.get("outputs", [])
        if RECORD in output.get("data", {})
    ]
    assert [r["run"]["name"] for r in records] == ["baseline", "wide-fast"]
    assert all(r["run"]["status"] == "FINISHED" for r in records)
    runs = {
        r.info.run_name: r
        for r in client.search_runs([client.get_experiment_by_name("quickstart").experiment_id])
    }
    baseline = runs["baseline"]
    assert baseline.data.params["lr"] == "0.003"
    assert baseline.data.params["hidden"] == "64"
    assert runs["wide-fast"].data.params["optimizer"] == "adam"
    assert baseline.data.metrics["val/acc"] > 0.8  # the model really learned the spirals
    history = client.get_metric_history(baseline.info.run_id, "train/loss")
    assert len(history) == 15 * 63  # every step of every epoch
    assert [a.path for a in client.list_artifacts(baseline.info.run_id, "model")] == [
        "model/baseline.pt"
    ]
