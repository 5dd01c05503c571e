"""A notebook with a run record, exported by nbconvert (what nbviewer shows), in a real browser."""

from __future__ import annotations

import nbformat
import pytest
from helpers.lab import artifacts_dir
from helpers.records import training_bundle
from nbconvert import HTMLExporter
from playwright.sync_api import Browser, Route, expect

pytestmark = pytest.mark.browser

ARTIFACTS = artifacts_dir()


@pytest.mark.parametrize("status", ["FINISHED", "KILLED"])
def test_exported_notebook_shows_the_chart_and_the_summary(chromium: Browser, status: str) -> None:
    bundle = training_bundle(status)
    cell = nbformat.v4.new_code_cell("%%track --experiment mnist-mlp\ntrain()")
    cell.outputs = [nbformat.v4.new_output("display_data", data=bundle)]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# MLP"), cell])
    nbformat.validate(notebook)
    body, _ = HTMLExporter().from_notebook_node(notebook)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page_path = ARTIFACTS / f"record_export_{status.lower()}.html"
    page_path.write_text(body, encoding="utf-8")

    page = chromium.new_page(viewport={"width": 1000, "height": 900})
    external: list[str] = []

    def offline(route: Route) -> None:
        # No network, as for a reader on a plane: only the file itself may load.
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            external.append(route.request.url)
            route.abort()

    page.route("**/*", offline)
    try:
        page.goto(page_path.as_uri(), wait_until="load")
        chart = page.locator("img[alt='metrics of run mlp-baseline']")
        expect(chart).to_be_visible()
        box = chart.bounding_box()
        assert box is not None
        assert box["width"] >= 600
        assert box["height"] >= 100
        # The chart is the record's PNG (what GitHub's viewer shows too), inline in a data:
        # URI, and it decoded into a real image (a broken one has width 0).
        assert chart.get_attribute("src") == f"data:image/png;base64,{bundle['image/png']}"
        assert chart.evaluate("img => img.complete ? img.naturalWidth : 0") == 640

        text = page.locator("body").inner_text()
        for expected in (status, "mlp-baseline", "experiment mnist-mlp", "train/loss",
                         "val/acc", "optimizer", "adam", "MLflow run 5f3c1a2b"):  # fmt: skip
            assert expected in text
        assert "hunter2" not in text
        if status == "KILLED":
            assert "stopped at step 19999: KeyboardInterrupt" in text
        # Whatever the page tried to fetch came from nbconvert's template, not from the record.
        assert not [url for url in external if url in str(bundle["text/html"])]

        output = page.locator(".jp-OutputArea-output").first
        output.screenshot(path=str(ARTIFACTS / f"record_export_{status.lower()}.png"))
    finally:
        page.close()
