"""A notebook with a run record, exported by nbconvert (what nbviewer shows), in a real browser."""

from __future__ import annotations

import nbformat
import numpy as np
import pytest
from lab_harness import artifacts_dir
from nbconvert import HTMLExporter
from playwright.sync_api import Browser, Route, expect

from nbtrack._curves import Curve
from nbtrack._model import RunFailure
from nbtrack.record import RecordSource, build_bundle

pytestmark = pytest.mark.browser

ARTIFACTS = artifacts_dir()


def _training_bundle(status: str) -> dict[str, object]:
    rng = np.random.default_rng(3)
    steps = np.arange(20_000)
    curves = {name: Curve() for name in ("train/loss", "val/loss", "val/acc")}
    train = 2.3 * np.exp(-steps / 4000) + 0.08 + 0.04 * rng.standard_normal(len(steps))
    curves["train/loss"].extend(steps.tolist(), train.tolist())
    epochs = np.arange(0, 20_000, 2000)
    curves["val/loss"].extend(epochs.tolist(), (2.1 * np.exp(-epochs / 4500) + 0.15).tolist())
    curves["val/acc"].extend(epochs.tolist(), (0.98 - 0.8 * np.exp(-epochs / 3000)).tolist())
    error = RunFailure("KeyboardInterrupt", "") if status == "KILLED" else None
    source = RecordSource(
        run_id="5f3c1a2b9d8e4f70a1b2c3d4e5f60718",
        run_name="mlp-baseline",
        experiment_id="1",
        experiment_name="mnist-mlp",
        status=status,
        start_time_ms=1_763_779_200_000,
        end_time_ms=1_763_779_200_000 + 754_000,
        tracking_uri="http://alice:hunter2@127.0.0.1:5000",
        ui_url="http://127.0.0.1:5000/#/experiments/1/runs/5f3c1a2b9d8e4f70a1b2c3d4e5f60718",
        notebook_path="train.ipynb",
        cell_id="a1b2c3",
        params={"lr": "0.003", "epochs": "10", "hidden": "256", "optimizer": "adam"},
        curves=curves,
        error=error,
    )
    return build_bundle(source)


@pytest.mark.parametrize("status", ["FINISHED", "KILLED"])
def test_exported_notebook_shows_the_chart_and_the_summary(chromium: Browser, status: str) -> None:
    bundle = _training_bundle(status)
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
        # The SVG inside the data: URI decoded into a real image (a broken one has width 0).
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
