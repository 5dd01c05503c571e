"""Comparing runs in real kernels: the example notebook end to end, child runs listed under
their parent, best values stored with each run, and %track_compare."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers.kernels import execute, notebook, records_of, text_of

from nbtrack.record import parse_record

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.kernel

PLOTLY = "application/vnd.plotly.v1+json"


def test_the_compare_notebook_tracks_three_runs_and_compares_them(store, client, tmp_path):
    path = tmp_path / "02_compare_runs.ipynb"
    shutil.copy(ROOT / "example_notebooks" / "02_compare_runs.ipynb", path)
    nb = execute(path)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    records = [parse_record(r) for cell in code for r in records_of(cell)]
    assert [r["run"]["name"] for r in records] == ["slow", "baseline", "wide-fast"]
    assert all(r["run"]["status"] == "FINISHED" for r in records)
    # train/loss per batch and val/loss per epoch share a panel, drawn against time.
    assert records[0]["panels"][0] == ["train/loss", "val/loss"]
    assert records[0]["panel_x"][0] == "relative"
    assert all(r.get("metrics_omitted") == 0 for r in records)

    table = next(c for c in code if "nbtrack.runs(" in c.source)
    shown = text_of(table)
    for name in ("slow", "baseline", "wide-fast", "best.val/loss", "params.lr"):
        assert name in shown
    figures = [o.data[PLOTLY] for c in code for o in c.outputs if PLOTLY in o.get("data", {})]
    assert len(figures) == 2  # nbtrack.compare(runs) and %track_compare
    full, two = figures
    names = {t.get("name") for t in full["data"] if t["type"] == "scatter"}
    assert "wide-fast · val/loss" in names
    table_trace = next(t for t in full["data"] if t["type"] == "table")
    assert table_trace["cells"]["values"][0] == ["hidden", "lr"]  # epochs is the same in all
    assert {t.get("name") for t in two["data"] if t["type"] == "scatter"} == {
        "baseline · val/acc",
        "wide-fast · val/acc",
    }

    # What the table said is what MLflow holds, best values included.
    experiment = client.get_experiment_by_name("compare-runs")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    for record in records:
        run = client.get_run(record["run"]["id"])
        best = json.loads(run.data.tags["nbtrack.best"])
        history = client.get_metric_history(run.info.run_id, "val/loss")
        assert best["val/loss"][0] == min(m.value for m in history)
        assert best["val/loss"][0] == pytest.approx(record["metrics"]["val/loss"]["best"])


def test_runs_of_a_parent_lists_the_tracked_cells_nested_under_it(store, client, tmp_path):
    path = notebook(
        "import mlflow, nbtrack\n"
        "mlflow.set_experiment('nested')\n"
        "parent = mlflow.start_run(run_name='sweep')",
        "%%track -e nested -n trial-a\nlr = 0.1\nfor i in range(5): nbtrack.log(loss=1 / (i + 1))",
        "%%track -e nested -n trial-b\nlr = 0.2\nfor i in range(5): nbtrack.log(loss=2 / (i + 1))",
        "nbtrack.wait(60)\n"
        "children = nbtrack.runs(parent=parent.info.run_id)\n"
        "print(sorted(children['name']), sorted(children['best.loss']))\n"
        "print(sorted(nbtrack.runs('nested')['name']))\n"
        "mlflow.end_run()",
        folder=tmp_path,
    )
    nb = execute(path)
    out = text_of(nb.cells[3])
    assert "['trial-a', 'trial-b'] [0.2, 0.4]" in out
    assert "['sweep', 'trial-a', 'trial-b']" in out
    experiment = client.get_experiment_by_name("nested")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    parent_id = runs["sweep"].info.run_id
    assert runs["trial-a"].data.tags["mlflow.parentRunId"] == parent_id
    assert runs["trial-b"].data.tags["mlflow.parentRunId"] == parent_id


def test_track_compare_magic_compares_this_notebooks_runs(store, tmp_path):
    path = notebook(
        "import nbtrack",
        "%%track -e magic -n one\nlr = 0.1\nfor i in range(5): nbtrack.log(loss=1 / (i + 1))",
        "%%track -e magic -n two\nlr = 0.2\nfor i in range(5): nbtrack.log(loss=2 / (i + 1))",
        "nbtrack.wait(60)\nfig = %track_compare\n"
        "print(sorted(t.name for t in fig.data if t.type == 'scatter'))",
        "%track_compare one nope",
        folder=tmp_path,
    )
    nb = execute(path, allow_errors=True)
    assert "['one · loss', 'two · loss']" in text_of(nb.cells[3])
    assert "UsageError: %track_compare: no run with id or name 'nope'" in text_of(nb.cells[4])
