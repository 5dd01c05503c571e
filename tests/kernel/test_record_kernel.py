"""Records left in notebooks by real kernel runs: valid, small, safe, readable without nbtrack."""

from __future__ import annotations

import json
from typing import Any

import nbformat
import pytest
from helpers.kernels import execute, notebook, outputs_of

from nbtrack.record import parse_record

pytestmark = pytest.mark.kernel
# Each test that uses `store` runs against the embedded SQLite default and the team server.
STORES = ("sqlite", "server")

RECORD = "application/vnd.nbtrack.run+json"


def _record_output(cell: Any) -> Any:
    found = [o for o in outputs_of(cell, "display_data") if RECORD in o.data]
    assert len(found) == 1, cell.outputs
    return found[0]


def test_finished_and_failed_runs_leave_valid_records_with_fallbacks(store, client):
    path = notebook(
        "import nbtrack",
        "%%track -e records -n good\nlr = 0.1\ntoken = 'tok-SECRETVALUE123'\n"
        "for i in range(200):\n"
        "    nbtrack.log(**{'train/loss': 1 / (i + 1), 'val/loss': 1.2 / (i + 1)}, acc=i / 200)\n"
        "nbtrack.log(loss_scale=float('nan'))\nprint('after the loop')",
        "%%track -e records -n bad\nfor i in range(30):\n    nbtrack.log(loss=float(i))\n"
        "raise RuntimeError('boom')",
        "nbtrack.wait(60)",
    )
    nb = execute(path, allow_errors=True)
    good, bad = nb.cells[1], nb.cells[2]

    output = _record_output(good)
    # The record sits where the live slot was: first output, before the cell's own prints.
    assert good.outputs[0] is output
    assert set(output.data) == {RECORD, "text/html", "image/svg+xml", "image/png", "text/plain"}
    record = parse_record(output.data[RECORD])
    assert record["run"]["status"] == "FINISHED"
    assert record["run"]["name"] == "good"
    assert record["params"] == {"lr": "0.1"}
    assert record["metrics"]["train/loss"]["count"] == 200
    assert record["metrics"]["loss_scale"]["nonfinite"] == 1
    # Chart panels decided by the kernel's nbtrack, in the order the cell logged its metrics.
    assert record["panels"] == [["train/loss", "val/loss"], ["acc"], ["loss_scale"]]
    assert record["sync"]["state"] in ("synced", "syncing")  # depends on the machine's speed
    assert "<svg" in output.data["image/svg+xml"]
    assert "good" in output.data["text/plain"]
    assert "<script" not in output.data["text/html"]
    assert "SECRETVALUE" not in json.dumps(output.data)
    run = client.get_run(record["run"]["id"])
    assert run.data.tags["nbtrack.nonfinite.loss_scale"]

    failed = parse_record(_record_output(bad).data[RECORD])
    assert failed["run"]["status"] == "FAILED"
    assert failed["error"]["type"] == "RuntimeError"
    assert failed["error"]["message"] == "boom"
    assert failed["metrics"]["loss"]["last_step"] == 29

    # Closing the live widgets at the end means no widget state is saved with the notebook.
    saved = nbformat.read(path, as_version=4)
    assert "widgets" not in saved.metadata


def test_big_offline_run_record_is_small_and_has_no_credentials(tmp_path, monkeypatch):
    # A store that cannot be reached: the run is spooled offline and the record says so.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://alice:hunter2@127.0.0.1:9/")
    monkeypatch.setenv("NBTRACK_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("NBTRACK_EXIT_WAIT", "0")
    monkeypatch.chdir(tmp_path)
    path = notebook(
        "import nbtrack",
        "%%track -e big\nfor i in range(100_000):\n"
        "    nbtrack.log(loss=1 / (i + 1), acc=i / 1e5, lr=0.1 * 0.99 ** (i // 1000))",
    )
    before = len(nbformat.writes(nbformat.v4.new_notebook()))
    execute(path)
    size = path.stat().st_size - before
    output = _record_output(nbformat.read(path, as_version=4).cells[1])
    record = parse_record(output.data[RECORD])
    assert record["metrics"]["loss"]["count"] == 100_000
    assert record["sync"]["state"] == "offline"
    assert record["tracking_uri"] == "http://127.0.0.1:9/"
    assert "hunter2" not in path.read_text()
    assert size < 100_000, f"the record added {size} bytes"


def test_where_nobody_waits_for_the_end_the_record_gets_its_png_in_place(tmp_path, monkeypatch):
    # The end does not wait for the upload (as where a person watches): the record is shown
    # at once without its PNG, which is added in place a moment later; the saved notebook
    # must have it, stored or not.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("NBTRACK_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("NBTRACK_END_WAIT", "0")
    monkeypatch.chdir(tmp_path)
    path = notebook(
        "import nbtrack",
        "%%track -e later -n quick\nfor i in range(50):\n    nbtrack.log(loss=1 / (i + 1))",
        "assert nbtrack.wait(60)\nimport time; time.sleep(1)",
    )
    execute(path)
    output = _record_output(nbformat.read(path, as_version=4).cells[1])
    record = parse_record(output.data[RECORD])
    assert record["run"]["status"] == "FINISHED"
    assert record["metrics"]["loss"]["count"] == 50
    assert record["sync"]["state"] == "synced"
    assert output.data["image/png"]
    assert f"data:image/png;base64,{output.data['image/png']}" in output.data["text/html"]
