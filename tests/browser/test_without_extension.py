"""A notebook with records opened in a JupyterLab where nbtrack's extension is disabled: the
record's text/html fallback (summary and chart image) is what the user sees."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import nbformat
import pytest
from helpers.lab import Lab, running_lab
from helpers.records import training_bundle
from playwright.sync_api import Page, expect

nbf: Any = nbformat.v4

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def plain_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("plain-home")
    labconfig = home / "config" / "labconfig"
    labconfig.mkdir(parents=True)
    # What `jupyter labextension disable nbtrack` writes, in this server's own config folder.
    (labconfig / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"nbtrack": True}})
    )
    with running_lab(home, tmp_path_factory.mktemp("plain-root"), check_nbtrack=False) as server:
        yield server


def test_record_falls_back_to_html_summary_and_chart(plain_lab: Lab, page: Page) -> None:
    cell = nbf.new_code_cell("%%track\n...")
    cell.outputs = [nbf.new_output("display_data", data=training_bundle("FINISHED"))]
    plain_lab.write_notebook("shared.ipynb", [cell])
    plain_lab.open_notebook(page, "shared.ipynb")

    output = page.locator(".jp-OutputArea-output").first
    expect(page.locator(".nbtrack-record")).to_have_count(0)  # the extension is really off
    expect(output).to_contain_text("FINISHED")
    expect(output).to_contain_text("mlp-baseline")
    expect(output).to_contain_text("train/loss")
    chart = output.locator("img").first
    expect(chart).to_be_visible()
    # The chart is an SVG data URI image: it decoded and has a real size.
    width = chart.evaluate("img => img.complete ? img.naturalWidth : 0")
    assert width > 100
    assert "hunter2" not in output.inner_html()
    plain_lab.screenshot(page, "record-without-extension")
