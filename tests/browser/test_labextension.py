"""nbtrack's JupyterLab extension in a real JupyterLab and Chromium: records, Runs panel,
and the server extension's authentication."""

from __future__ import annotations

import os
import shutil
from typing import Any

import nbformat
import pytest
from helpers.lab import ROOT, Lab, PageEvents, artifacts_dir
from helpers.records import UI, curve, metric, record, record_cell, training_record
from playwright.sync_api import Page, expect

# nbformat ships no type hints.
nbf: Any = nbformat.v4

pytestmark = pytest.mark.browser

T0 = 1_763_779_200_000  # 2025-11-22, epoch ms


def test_saved_record_renders_charts_without_kernel(lab: Lab, page: Page) -> None:
    lab.write_notebook(
        "record.ipynb",
        [
            nbf.new_markdown_cell("A notebook shared without its kernel."),
            record_cell(training_record("a1b2c3", "baseline", T0, "0.003")),
        ],
    )
    lab.open_notebook(page, "record.ipynb")
    view = page.locator(".nbtrack-record")
    expect(view).to_have_count(1)
    expect(view.locator(".nbtrack-record-name")).to_have_text("baseline")
    expect(view.locator(".nbtrack-status")).to_have_text("FINISHED")
    expect(view.locator(".nbtrack-record-facts")).to_contain_text("took 1 min 00 s")
    # The record's panels: train/loss and val/loss share a chart; accuracy and the 400x larger
    # grad_norm do not.
    titles = view.locator(".nbtrack-chart-title")
    expect(titles).to_have_text(["train/loss, val/loss", "val/acc", "grad_norm"])
    expect(view.locator(".nbtrack-chart").first.locator(".u-legend .u-label")).to_have_text(
        ["step", "train/loss", "val/loss"]
    )
    expect(view.locator(".nbtrack-chart canvas")).to_have_count(3)
    expect(view.locator(".nbtrack-params td", has_text="batch_size")).to_have_count(1)
    link = view.locator("a.nbtrack-mlflow-link")
    expect(link).to_have_attribute("href", f"{UI}#/experiments/1/runs/a1b2c3")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    # The extension's renderer won over the HTML fallback, in an untrusted notebook.
    expect(page.locator(".nbtrack-test-html-fallback")).to_have_count(0)
    assert lab.running_kernels() == []

    view.scroll_into_view_if_needed()
    lab.screenshot(page, "record")
    view_png = artifacts_dir() / "record-view.png"
    view.screenshot(path=str(view_png))
    # The README's picture is refreshed on request, never as a side effect of CI.
    if os.environ.get("NBTRACK_UPDATE_SCREENSHOTS") == "1":
        images = ROOT / "docs" / "images"
        images.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(view_png, images / "record.png")

    # Hovering shows the values at the cursor; the log switch redraws with a log axis.
    plot = view.locator(".nbtrack-chart").first.locator(".u-over")
    plot.scroll_into_view_if_needed()
    box = plot.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 3, box["y"] + box["height"] / 2)
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)
    legend_value = view.locator(".nbtrack-chart").first.locator(".u-series").nth(1)
    expect(legend_value.locator(".u-value")).not_to_have_text("—")
    first_chart = view.locator(".nbtrack-chart").first
    expect(first_chart).to_have_attribute("data-scale", "linear")
    first_chart.locator(".nbtrack-chart-log input").check()
    expect(first_chart).to_have_attribute("data-scale", "log")
    expect(first_chart.locator("canvas")).to_have_count(1)
    # grad_norm never goes negative, but a chart may refuse the switch: delta-like curves.
    expect(view.locator(".nbtrack-chart-log input").nth(2)).to_be_enabled()


XSS_FLAG = "__nbtrackXss"


def test_record_payloads_render_as_text_and_run_nothing(
    lab: Lab, page: Page, page_events: PageEvents
) -> None:
    img = f"<img src=x onerror=\"window.{XSS_FLAG}='img';alert(1)\">"
    script = f"<script>window.{XSS_FLAG}='script';alert(2)</script>"
    svg = f"<svg onload=\"window.{XSS_FLAG}='svg';alert(3)\"></svg>"
    loss = curve("loss", 20)
    doc = record(
        "evil1",
        img,
        start=T0,
        status="FAILED",
        params={script: img, "note": svg},
        metrics={img: metric(loss, "min"), f"val/{script}": metric(loss, "min")},
        error={"type": script, "message": img + svg, "step": 3},
        ui_url=f"javascript:window.{XSS_FLAG}='link';alert(4)",
    )
    lab.write_notebook("xss.ipynb", [record_cell(doc)])
    lab.open_notebook(page, "xss.ipynb")
    view = page.locator(".nbtrack-record")
    expect(view.locator(".nbtrack-record-name")).to_have_text(img)
    expect(view.locator(".nbtrack-record-error")).to_have_text(f"{script}: {img}{svg} (at step 3)")
    expect(view.locator(".nbtrack-params td", has_text=script)).to_have_count(1)
    expect(view.locator(".nbtrack-metrics td").first).to_have_text(img)
    expect(view.locator(".u-legend .u-label", has_text=img)).to_have_count(1)
    # Nothing from the record became markup, and the javascript: URL is no link.
    for tag in ("img", "script", "svg"):
        expect(view.locator(tag)).to_have_count(0)
    expect(view.locator("a")).to_have_count(0)
    page.wait_for_timeout(1000)
    assert page.evaluate(f"window.{XSS_FLAG}") is None
    assert page_events.dialogs == []
    lab.screenshot(page, "xss")


def test_runs_panel_lists_and_compares_runs(lab: Lab, page: Page) -> None:
    lab.write_notebook(
        "runs.ipynb",
        [
            record_cell(training_record("run000001", "first", T0, "0.003")),
            nbf.new_markdown_cell("Lower learning rate:"),
            record_cell(training_record("run000002", "slow", T0 + 120_000, "0.001")),
            record_cell(training_record("run000003", "latest", T0 + 240_000, "0.003")),
        ],
    )
    lab.open_notebook(page, "runs.ipynb", outputs=3)
    lab.run_command(page, "nbtrack:show-runs")
    panel = page.locator(".nbtrack-runs-panel")
    expect(panel).to_be_visible()
    items = panel.locator(".nbtrack-run-item")
    expect(items.locator(".nbtrack-run-name")).to_have_text(["latest", "slow", "first"])
    # Params that vary between the notebook's runs come first in each summary.
    expect(items.nth(1).locator(".nbtrack-run-params")).to_contain_text("lr=0.001")
    expect(items.nth(1).locator(".nbtrack-run-metrics")).to_contain_text("(best)")
    lab.screenshot(page, "runs-panel")

    # A click brings the run's cell into view and makes it the active cell.
    items.nth(2).locator(".nbtrack-run-name").click()
    active = page.locator(".jp-NotebookPanel .jp-Cell.jp-mod-active")
    expect(active.locator(".nbtrack-record-name")).to_have_text("first")

    items.nth(0).locator(".nbtrack-run-select").check()
    items.nth(1).locator(".nbtrack-run-select").check()
    panel.locator(".nbtrack-compare-button").click()
    compare = panel.locator(".nbtrack-compare")
    expect(compare).to_be_visible()
    diff_rows = compare.locator(".nbtrack-param-diff tbody tr")
    expect(diff_rows).to_have_count(1)
    expect(diff_rows.locator("td")).to_have_text(["lr", "0.003", "0.001"])
    # Overlaid curves: both runs' train/loss and val/loss on the loss chart.
    loss_chart = compare.locator(".nbtrack-chart").first
    expect(loss_chart.locator(".nbtrack-chart-title")).to_have_text("train/loss, val/loss")
    expect(loss_chart.locator(".u-legend .u-label")).to_have_text(
        ["step", "latest · train/loss", "latest · val/loss", "slow · train/loss", "slow · val/loss"]
    )
    expect(loss_chart.locator("canvas")).to_have_count(1)
    href = compare.locator("a.nbtrack-mlflow-compare").get_attribute("href")
    assert href is not None
    # The server extension knows a live UI for this store (through jupyter-server-proxy, which
    # the test environment has); it wins over the address the records were made with.
    assert href.startswith(f"{lab.base_url}mlflow/#/compare-runs?runs=")
    assert "run000003" in href
    assert "run000002" in href
    compare.scroll_into_view_if_needed()
    lab.screenshot(page, "runs-compare")


def test_a_records_link_never_becomes_the_link_of_the_users_store_runs(
    lab: Lab, page: Page
) -> None:
    """A notebook can come from anyone: a record's ui_url links that record's run and nothing
    else. The security review's notebook holds one record dated far in the future (so it sorts
    as the newest) whose ui_url is an attacker's site; the Runs panel built the links of the
    user's own store runs, and MLflow's comparison, on it, handing their ids to that site."""
    from mlflow import MlflowClient

    folder = lab.root_dir / "shared"
    folder.mkdir()
    path = folder / "shared.ipynb"
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    own = client.create_run(
        client.create_experiment("mine"),
        tags={"mlflow.source.name": str(path.resolve())},
        run_name="my-own-run",
    )
    client.set_terminated(own.info.run_id)
    attacker = "https://attacker.example/mlflow/"
    hostile = training_record("e" * 32, "shared-result", 4_000_000_000_000, "0.1")
    hostile["ui_url"] = f"{attacker}#/experiments/1/runs/{'e' * 32}"
    lab.write_notebook("shared/shared.ipynb", [record_cell(hostile)])
    # The server's first read of a store imports MLflow (seconds on a loaded machine; two
    # first reads at once can fail): read it once here, before the page does. No MLflow UI
    # runs for this store.
    status, listing = lab.request("GET", "nbtrack/api/runs?path=shared/shared.ipynb")
    assert status == 200, listing
    assert listing["ui_url"] is None
    lab.open_notebook(page, "shared/shared.ipynb")
    # The record's own view links its own run where the record says.
    record_link = page.locator(".nbtrack-record a.nbtrack-mlflow-link")
    expect(record_link).to_have_attribute("href", hostile["ui_url"])

    lab.run_command(page, "nbtrack:show-runs")
    panel = page.locator(".nbtrack-runs-panel")
    items = panel.locator(".nbtrack-run-item")
    # Once the store's run is listed the server has answered: with no MLflow UI for this store,
    # the user's run gets no link at all rather than one to the record's site.
    expect(items.locator(".nbtrack-run-name")).to_have_text(["shared-result", "my-own-run"])
    expect(panel.locator(".nbtrack-start-ui")).to_be_visible()
    expect(panel.locator("a")).to_have_count(0)
    for box in items.locator(".nbtrack-run-select").all():
        box.check()
    panel.locator(".nbtrack-compare-button").click()
    compare = panel.locator(".nbtrack-compare")
    expect(compare).to_be_visible()
    expect(compare).to_contain_text("Start the MLflow UI to compare these runs there too.")
    expect(panel.locator("a")).to_have_count(0)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "nbtrack/api/runs?path=runs.ipynb"),
        ("GET", "nbtrack/api/ui?path=runs.ipynb"),
        ("POST", "nbtrack/api/ui?path=runs.ipynb"),
    ],
)
def test_server_endpoints_refuse_unauthenticated_requests(lab: Lab, method: str, path: str) -> None:
    pytest.importorskip("nbtrack.server", reason="the server extension nbtrack.server is missing")
    status, body = lab.request(method, path, token=False, body=b"" if method == "POST" else None)
    assert status in (401, 403), body
    assert isinstance(body, dict), f"expected a JSON error, got {body!r}"
    # The endpoint exists: with the token a GET is answered (not 404).
    if method == "GET":
        status, body = lab.request("GET", path)
        assert status != 404, body
        assert isinstance(body, dict)
