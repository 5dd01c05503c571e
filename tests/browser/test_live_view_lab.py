"""A tracked cell run from JupyterLab: its record is drawn live while it runs, stays in place as
the final record, and updates itself once the upload is done."""

from __future__ import annotations

import re
import time
from typing import Any

import nbformat
import pytest
from helpers.lab import Lab
from playwright.sync_api import Page, expect

nbf: Any = nbformat.v4

pytestmark = pytest.mark.browser

PYTHON3 = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


RECORD = ".jp-OutputArea-output .nbtrack-record"


def _points_shown(page: Page) -> int:
    """The point count of `loss` in the record's metrics table, -1 before it shows."""
    row = page.locator(f"{RECORD} .nbtrack-metrics tr", has_text="loss")
    if row.count() == 0:
        return -1
    cells = row.first.locator("td").all_inner_texts()
    return int(re.sub(r"\D", "", cells[-1]) or -1)


def test_the_record_is_drawn_live_then_stays_as_the_final_record(lab: Lab, page: Page) -> None:
    lab.write_notebook(
        "live.ipynb",
        [
            nbf.new_code_cell("import nbtrack, time"),
            nbf.new_code_cell(
                "%%track -e live -n from-the-browser\n"
                "for i in range(300):\n"
                "    nbtrack.log(loss=1.0 / (i + 1), acc=i / 300)\n"
                "    time.sleep(0.04)\n"
                "print('cell done')"
            ),
        ],
        kernelspec=PYTHON3,
    )
    lab.open_notebook(page, "live.ipynb", outputs=0)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status=idle]", timeout=60_000)
    # Fire and forget: awaiting the command would return only once every cell has finished.
    page.evaluate("() => { void window.jupyterapp.commands.execute('runmenu:run-all'); }")

    record = page.locator(RECORD)
    expect(record).to_have_count(1, timeout=60_000)
    expect(record.locator(".nbtrack-record-name")).to_have_text("from-the-browser")
    expect(record.locator(".nbtrack-status")).to_have_text("RUNNING", timeout=30_000)
    # The same record keeps moving while the cell runs, redrawn in place.
    deadline = time.monotonic() + 30
    first = _points_shown(page)
    while _points_shown(page) <= max(first, 0) and time.monotonic() < deadline:
        page.wait_for_timeout(300)
    second = _points_shown(page)
    assert second > first, (first, second)
    expect(record).to_have_count(1)
    deadline = time.monotonic() + 30  # far enough into training for the charts to mean something
    while _points_shown(page) < 120 and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    lab.screenshot(page, "live-view")

    # At the end it is the run's record, in the same place; print output stays.
    expect(record.locator(".nbtrack-status")).to_have_text("FINISHED", timeout=60_000)
    expect(record).to_have_count(1)
    expect(page.locator(".jp-OutputArea-output", has_text="cell done")).to_have_count(1)
    # The cell did not wait for the upload: the record said "syncing" and updates itself in
    # place once MLflow has everything.
    expect(record.locator(".nbtrack-record-note", has_text="sync:")).to_have_count(
        0, timeout=60_000
    )
    expect(record.locator(".nbtrack-mlflow-link, .nbtrack-record-name")).not_to_have_count(0)
    lab.screenshot(page, "record-after-live")

    # Saved, the notebook holds the final record and no widget state at all.
    lab.run_command(page, "docmanager:save")
    saved = nbformat.read(lab.root_dir / "live.ipynb", as_version=4)
    assert "widgets" not in saved.metadata
    outputs = saved.cells[1].outputs
    kinds = [set(o.get("data", {})) for o in outputs]
    assert not any("application/vnd.jupyter.widget-view+json" in k for k in kinds)
    (kept,) = [o.data["application/vnd.nbtrack.run+json"] for o in outputs if "data" in o
               and "application/vnd.nbtrack.run+json" in o.data]  # fmt: skip
    assert kept["run"]["status"] == "FINISHED"
    assert kept["sync"]["state"] == "synced"
    assert kept["run"]["id"]

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{lab.root_dir / 'mlflow.db'}")
    exp = client.get_experiment_by_name("live")
    assert exp is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        (run,) = client.search_runs([exp.experiment_id])
        if run.info.status == "FINISHED":
            break
        time.sleep(0.5)
    assert run.info.status == "FINISHED"
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 300
    assert run.data.tags["mlflow.source.name"].endswith("live.ipynb")
    # JupyterLab sends the cell's id with the execution: re-runs of the cell group on it.
    assert run.data.tags["nbtrack.cell_id"] == saved.cells[1].id
    assert run.data.tags["nbtrack.cell"] == saved.cells[1].id
