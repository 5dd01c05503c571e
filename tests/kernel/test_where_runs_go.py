"""Which experiment a tracked cell's run goes to when the cell names none: the one chosen the
MLflow way, as an MLflow user expects, before the notebook's name."""

from __future__ import annotations

from typing import Any

import nbformat
import pytest
from helpers.kernels import Kernel, execute, notebook, text_of

from nbtrack.record import parse_record

RECORD = "application/vnd.nbtrack.run+json"


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


def test_an_experiment_chosen_by_id_gets_the_run_and_its_name_reaches_the_record(
    store: str, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = client.create_experiment("team-by-id")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", chosen)
    path = notebook(
        "import nbtrack",
        "%%track -n by-id\nprint('at start:', nbtrack.active_run().experiment_id)\n"
        "nbtrack.log(loss=1.0)",
        "nbtrack.wait(60)",
        name="by-id.ipynb",
    )
    execute(path)
    assert _run_names_by_experiment(client) == {"team-by-id": ["by-id"]}
    cell = nbformat.read(path, as_version=4).cells[1]
    (output,) = [o for o in cell.outputs if RECORD in o.get("data", {})]
    run = parse_record(output.data[RECORD])["run"]
    # The id is known from the start; the name once the sync process has looked it up.
    assert (run["experiment_id"], run["experiment_name"]) == (chosen, "team-by-id")
    assert f"at start: {chosen}" in text_of(cell)


@pytest.mark.server
def test_an_experiment_chosen_by_id_while_the_store_is_down_holds_up_no_cell(
    server_store: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Looking the id's name up in the kernel took MLflow's HTTP retries, about four minutes,
    # at every tracked cell while the team's server was away. The id now travels with the run
    # in its journal, and the sync process uses it once the store answers.
    from mlflow import MlflowClient

    proxy = server_store
    client = MlflowClient(proxy.url)
    chosen = client.create_experiment("team-by-id-offline")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", chosen)
    proxy.down()
    kernel = Kernel(tmp_path)
    try:
        kernel.run("import nbtrack")
        for name in ("first", "second"):
            msg_id = kernel.submit(f"%%track -n {name}\nnbtrack.log(loss=1.0)")
            assert kernel.wait_reply(msg_id, timeout=60)["status"] == "ok"
        proxy.up()
        _, outputs = kernel.run("print('synced:', nbtrack.wait(120))")
        assert "synced: True" in str(outputs)
    finally:
        kernel.shutdown()
    assert _run_names_by_experiment(client) == {"team-by-id-offline": ["first", "second"]}


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
    assert "experiment id 424242" in said
    assert "is not in the tracking store, so run 'kept' went to experiment 'unknown-id'" in said
    assert "%%track -e NAME" in said
    assert _run_names_by_experiment(client) == {"unknown-id": ["kept"]}
    (output,) = [o for o in nb.cells[1].outputs if RECORD in o.get("data", {})]
    run = parse_record(output.data[RECORD])["run"]
    assert run["experiment_name"] == "unknown-id"
