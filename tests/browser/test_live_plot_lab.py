"""A tracked cell run from JupyterLab: the live plot updates while it runs, then the record
replaces it in place."""

from __future__ import annotations

import re
import time
from typing import Any

import nbformat
import pytest
from lab_harness import Lab
from playwright.sync_api import Page, expect

nbf: Any = nbformat.v4

pytestmark = pytest.mark.browser

PYTHON3 = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


# The status line is an ipywidgets HTML widget under the cell (the sanitizer may drop our
# class names, so find it by what it says).
STATUS = ".jp-OutputArea-output .widget-html"


def _step_shown(page: Page) -> int:
    texts = page.locator(STATUS).all_inner_texts()
    text = " ".join(texts)
    match = re.search(r"step ([\d,]+)", text)
    return int(match.group(1).replace(",", "")) if match else -1


def test_live_plot_updates_then_record_replaces_it(lab: Lab, page: Page) -> None:
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

    status = page.locator(STATUS, has_text="from-the-browser")
    expect(status).to_have_count(1, timeout=60_000)
    expect(page.locator(".jp-OutputArea-output .js-plotly-plot")).to_have_count(1, timeout=60_000)
    # The plot keeps moving while the cell runs.
    deadline = time.monotonic() + 30
    first = _step_shown(page)
    while _step_shown(page) <= max(first, 0) and time.monotonic() < deadline:
        page.wait_for_timeout(300)
    second = _step_shown(page)
    assert second > first >= -1, (first, second)
    lab.screenshot(page, "live-plot")

    # At the end the record replaces the widget in the same place; print output stays.
    record = page.locator(".nbtrack-record")
    expect(record).to_have_count(1, timeout=60_000)
    expect(page.locator(".js-plotly-plot")).to_have_count(0)
    expect(status).to_have_count(0)
    expect(record.locator(".nbtrack-record-name")).to_have_text("from-the-browser")
    expect(record.locator(".nbtrack-status")).to_have_text("FINISHED")
    expect(page.locator(".jp-OutputArea-output", has_text="cell done")).to_have_count(1)
    lab.screenshot(page, "record-after-live")

    # Saved, the notebook holds the record and nothing of the widgets (no state, no plotly.js).
    lab.run_command(page, "docmanager:save")
    saved = nbformat.read(lab.root_dir / "live.ipynb", as_version=4)
    assert "widgets" not in saved.metadata
    kinds = [set(o.get("data", {})) for o in saved.cells[1].outputs]
    assert not any("application/vnd.jupyter.widget-view+json" in k for k in kinds)
    assert any("application/vnd.nbtrack.run+json" in k for k in kinds)

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
