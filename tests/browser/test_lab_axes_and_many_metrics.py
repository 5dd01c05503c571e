"""The lab extension's charts: the x axis a record chose and the control to change it, and
records with thousands of metrics drawn a batch at a time with the tab staying responsive."""

from __future__ import annotations

import time
from typing import Any

import nbformat
import numpy as np
import pytest
from helpers.lab import Lab, PageEvents
from helpers.records import metric, record, record_cell
from playwright.sync_api import Page, expect

from nbtrack._curves import Curve
from nbtrack.record import MIME_TYPE, RecordSource, build_bundle

nbf: Any = nbformat.v4

pytestmark = pytest.mark.browser

T0 = 1_763_779_200_000


def _quickstart_cell() -> Any:
    """A record as nbtrack writes it for the quickstart: train/loss per batch, val/loss per
    epoch with step=epoch."""
    batches, epochs = np.arange(945), np.arange(15)
    start = T0 / 1000
    train, val = Curve(), Curve()
    train.extend(batches, 0.7 * np.exp(-batches / 200) + 0.05, start + 0.5 + batches * 0.063)
    val.extend(epochs, 0.6 * np.exp(-epochs / 3) + 0.08, start + 0.5 + (epochs + 1) * 3.969)
    bundle = build_bundle(
        RecordSource(
            run_id="a" * 32, run_name="baseline", experiment_id="1", experiment_name="quickstart",
            status="FINISHED", start_time_ms=T0, end_time_ms=T0 + 62_000, tracking_uri=None,
            ui_url=None, notebook_path="q.ipynb", cell_id=None, params={"lr": "0.003"},
            curves={"train/loss": train, "val/loss": val},
        )
    )  # fmt: skip
    cell = nbf.new_code_cell("%%track\n...")
    cell.outputs = [nbf.new_output("display_data", data={MIME_TYPE: bundle[MIME_TYPE]})]
    return cell


def test_a_panel_mixing_step_rates_opens_on_time_and_can_switch_axis(lab: Lab, page: Page) -> None:
    lab.write_notebook("axes.ipynb", [_quickstart_cell()])
    lab.open_notebook(page, "axes.ipynb")
    chart = page.locator(".nbtrack-chart").first
    expect(chart).to_have_attribute("data-x", "relative")
    picker = chart.locator("select.nbtrack-chart-x")
    expect(picker.locator("option")).to_have_text(["step", "time since start", "wall-clock time"])
    expect(chart.locator(".u-legend .u-label").first).to_have_text("time since start (s)")
    picker.select_option("step")
    expect(chart).to_have_attribute("data-x", "step")
    expect(chart.locator(".u-legend .u-label").first).to_have_text("step")
    picker.select_option("wall")
    expect(chart).to_have_attribute("data-x", "wall")
    expect(chart.locator("canvas")).to_have_count(1)
    lab.screenshot(page, "chart-axes")


def _many_metrics_cell(n: int) -> Any:
    """A record with n metrics, each with its curve and its own panel: what nbtrack before
    schema 3 wrote for a run logging n metrics (2 MB for 10,000), or a hand-made record."""
    points = {"steps": list(range(20)), "values": [float(v) for v in np.linspace(1, 0.1, 20)]}
    metrics = {f"layer{i}/grad_norm": metric(points, None) for i in range(n)}
    doc = record("b" * 32, f"{n}-metrics", start=T0, params={"lr": "0.1"}, metrics=metrics)
    return record_cell(doc)


@pytest.mark.parametrize("n", [1_000, 10_000])
def test_thousands_of_metrics_render_a_batch_at_a_time(
    lab: Lab, page: Page, page_events: PageEvents, n: int
) -> None:
    lab.write_notebook(f"many-{n}.ipynb", [_many_metrics_cell(n)])
    started = time.monotonic()
    lab.open_notebook(page, f"many-{n}.ipynb")
    view = page.locator(".nbtrack-record")
    expect(view.locator(".nbtrack-chart canvas")).to_have_count(12)
    rendered_s = time.monotonic() - started
    # The rest are listed with a way to open them, never drawn at once.
    more = view.locator("button.nbtrack-more-charts")
    expect(more).to_have_text(f"Show 12 more charts ({n - 12} not drawn)")
    expect(view.locator(".nbtrack-metrics tbody tr")).to_have_count(50)
    expect(view.locator("button.nbtrack-more-metrics")).to_have_text(f"Show 50 more of {n} metrics")
    more.click()
    expect(view.locator(".nbtrack-chart canvas")).to_have_count(24)
    view.locator("button.nbtrack-more-metrics").click()
    expect(view.locator(".nbtrack-metrics tbody tr")).to_have_count(100)
    # The tab stays healthy: it answers at once and holds a bounded heap.
    heap = page.evaluate("() => performance.memory ? performance.memory.usedJSHeapSize : 0")
    assert heap < 400 * 2**20
    assert page_events.errors == []
    heap_mb = heap / 2**20
    print(f"{n} metrics: first charts {rendered_s:.1f} s after opening, heap {heap_mb:.0f} MB")
