"""Which experiment a tracked cell's run goes to when the cell names none: the one chosen the
MLflow way, as an MLflow user expects, before the notebook's name."""

from __future__ import annotations

from typing import Any

import pytest
from helpers.kernels import execute, notebook, text_of


def _run_names_by_experiment(client: Any) -> dict[str, list[str]]:
    from mlflow.entities import ViewType

    found: dict[str, list[str]] = {}
    for experiment in client.search_experiments(view_type=ViewType.ACTIVE_ONLY):
        runs = client.search_runs([experiment.experiment_id])
        if runs:
            found[experiment.name] = sorted(r.info.run_name for r in runs)
    return found


def test_a_cell_without_an_experiment_goes_where_mlflow_was_told(
    store: str, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A team's environment names its experiment; a notebook written for MLflow calls
    # mlflow.set_experiment() at its top. Both were ignored: the runs went to an experiment
    # named after the notebook. MLflow's order holds: set_experiment, then the environment.
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "team-env")
    path = notebook(
        "import nbtrack",
        "%%track -n from-env\nnbtrack.log(loss=1.0)",
        "import mlflow\nprint('chosen id:', mlflow.set_experiment('set-here').experiment_id)",
        "%%track -n from-set\nnbtrack.log(loss=2.0)",
        "%%track -n explicit -e named\nnbtrack.log(loss=3.0)",
        "nbtrack.wait(60)",
        name="where.ipynb",
    )
    nb = execute(path)
    assert "chosen id:" in text_of(nb.cells[2])
    assert _run_names_by_experiment(client) == {
        "team-env": ["from-env"],
        "set-here": ["from-set"],
        "named": ["explicit"],
    }


def test_an_experiment_id_that_cannot_be_found_is_said_and_the_run_kept(
    store: str, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "424242")
    path = notebook(
        "import nbtrack",
        "%%track -n kept\nnbtrack.log(loss=1.0)",
        "nbtrack.wait(60)",
        name="unknown-id.ipynb",
    )
    nb = execute(path)
    said = text_of(nb.cells[1])
    assert "experiment id 424242 could not be looked up" in said
    assert "%%track -e NAME" in said
    assert _run_names_by_experiment(client) == {"unknown-id": ["kept"]}
