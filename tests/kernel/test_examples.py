"""The PyTorch and frameworks example notebooks run headless and leave what they promise."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers.kernels import execute, records_of, text_of

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("torch")


def _example(name: str, folder: Path) -> Any:
    path = folder / name
    shutil.copy(ROOT / "example_notebooks" / name, path)
    return execute(path)


def _records(nb: Any) -> list[dict[str, Any]]:
    return [record for cell in nb.cells if cell.cell_type == "code" for record in records_of(cell)]


def test_pytorch_example_watches_logs_data_and_model_and_evaluates_the_reloaded_model(
    store, client, tmp_path, monkeypatch
):
    monkeypatch.setenv("NBTRACK_SYSTEM_METRICS", "2")  # the notebook shows them (--system)
    nb = _example("04_pytorch_watch_and_models.ipynb", tmp_path)
    (record,) = _records(nb)
    assert record["run"]["status"] == "FINISHED"
    assert {"train/loss", "val/acc", "grad_norm", "weight_norm/body", "lr"} <= set(
        record["metrics"]
    )
    assert any(name.startswith("system/") for name in record["metrics"])  # --system
    (run,) = client.search_runs([client.get_experiment_by_name("pytorch-models").experiment_id])
    assert len(run.inputs.dataset_inputs) == 2
    checkpoints = [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")]
    assert checkpoints == ["checkpoints/step-00000007.pt", "checkpoints/step-00000011.pt"]
    scores = text_of(next(c for c in nb.cells if "precision_recall" in c.source))
    accuracy = float(scores.split("test (macro)")[1].split()[0])
    assert accuracy > 0.9  # the reloaded model classifies the blobs


def test_frameworks_example_gives_one_run_per_cell(store, client, tmp_path):
    nb = _example("05_lightning_and_transformers.ipynb", tmp_path)
    records = _records(nb)
    names = ["lightning", "lightning-mlflowlogger", "transformers", "transformers-report-to"]
    assert [r["run"]["name"] for r in records] == names
    assert all(r["run"]["status"] == "FINISHED" for r in records)
    # No framework created a run (or an experiment) of its own.
    experiments = [e.name for e in client.search_experiments()]
    assert sorted(experiments) == ["Default", "frameworks"]
    runs = client.search_runs([client.get_experiment_by_name("frameworks").experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(names)
    by_name = {r["run"]["name"]: r for r in records}
    assert by_name["lightning-mlflowlogger"]["metrics"]["train/loss"]["count"] > 10
    assert by_name["transformers-report-to"]["metrics"]["loss"]["count"] > 5
    assert by_name["transformers"]["metrics"]["test/f1"]["last"] > 0.9
    assert "{'accuracy': 1.0" in text_of(next(c for c in nb.cells if "scores(y_test" in c.source))
