"""Runs that nbtrack tracked, seen in MLflow's own UI in Chromium: the experiment opens in the
model-training view (not the GenAI one), and child runs nest under their parent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from helpers.kernels import execute, notebook
from helpers.lab import artifacts_dir
from playwright.sync_api import Browser, Page, expect

import nbtrack
from nbtrack.ui.process import ensure_ui, stop_ui

pytestmark = pytest.mark.browser

UI_TIMEOUT_MS = 60_000


@pytest.fixture
def tracked(store: str, tmp_path: Any) -> Iterator[str]:
    """An experiment nbtrack created (its first tracked cell), then a parent run opened with
    mlflow.start_run and two tracked cells under it."""
    path = notebook(
        "import mlflow, nbtrack",
        "%%track -e nested-ui -n first\nfor i in range(5): nbtrack.log(loss=1/(i+1))",
        "nbtrack.wait(60)\n"
        "mlflow.set_experiment('nested-ui')\n"
        "parent = mlflow.start_run(run_name='sweep')",
        "%%track -e nested-ui -n trial-a\nlr = 0.1\nfor i in range(20): nbtrack.log(loss=1/(i+1))",
        "%%track -e nested-ui -n trial-b\nlr = 0.2\nfor i in range(20): nbtrack.log(loss=2/(i+1))",
        "nbtrack.wait(60)\nmlflow.end_run()",
        folder=tmp_path,
    )
    execute(path)
    yield store
    stop_ui(store)


@pytest.fixture
def ui_page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def test_nbtrack_links_open_the_training_view_with_child_runs_nested(
    tracked: str, client: Any, ui_page: Page
) -> None:
    experiment = client.get_experiment_by_name("nested-ui")
    # The tag older MLflow UIs read; MLflow 3.17's reads the view from the address (below).
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    ui = ensure_ui(tracked)
    page = ui_page

    # A run's link from nbtrack (records, nbtrack.runs()) opens it in the training view.
    frame = nbtrack.runs("nested-ui", store=tracked)
    url = frame.set_index("name").loc["trial-a", "url"]
    assert url.startswith(ui.url)
    assert url.endswith("?workflowType=machine_learning")
    page.goto(url)
    expect(page.get_by_text("trial-a").first).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.get_by_role("button", name="Model training")).to_have_count(1)
    _expect_training_view(page)
    page.screenshot(path=str(artifacts_dir() / "mlflow-run-page.png"))

    # The experiment in that view: runs, not traces; the parent run with its children nested.
    page.goto(f"{ui.url}#/experiments/{experiment.experiment_id}?workflowType=machine_learning")
    expect(page.get_by_role("heading", name="Runs")).to_be_visible(timeout=UI_TIMEOUT_MS)
    _expect_training_view(page)
    parent_row = page.get_by_role("row").filter(has_text="sweep")
    expect(parent_row).to_have_count(1, timeout=UI_TIMEOUT_MS)
    expect(page.get_by_text("trial-a")).to_have_count(0)  # folded under the parent
    parent_row.get_by_role("button").first.click()
    expect(page.get_by_text("trial-a")).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.get_by_text("trial-b")).to_be_visible()
    page.screenshot(path=str(artifacts_dir() / "mlflow-training-view.png"))

    # The comparison's link opens MLflow's own comparison of the same runs.
    trials = frame[frame["name"].str.startswith("trial")]
    compare_url = nbtrack.compare(trials).layout.meta["mlflow_compare_url"]
    assert compare_url.startswith(f"{ui.url}#/compare-runs?")
    page.goto(compare_url)
    expect(page.get_by_text("trial-b").first).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.screenshot(path=str(artifacts_dir() / "mlflow-compare.png"))


def _expect_training_view(page: Page) -> None:
    """The side bar of MLflow's model-training view, not its GenAI one."""
    expect(page.get_by_role("link", name="Models").first).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.get_by_role("link", name="Judges")).to_have_count(0)
    expect(page.get_by_text("Token Usage")).to_have_count(0)
