"""A notebook with records opened in a JupyterLab where nbtrack's extension is disabled: the
record's text/html fallback (summary and chart image) is what the user sees."""

from __future__ import annotations

import json
import re
import time
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
    # The chart is the record's PNG as a data URI image: it decoded and has a real size.
    assert (chart.get_attribute("src") or "").startswith("data:image/png;base64,")
    width = chart.evaluate("img => img.complete ? img.naturalWidth : 0")
    assert width == 640
    assert "hunter2" not in output.inner_html()
    plain_lab.screenshot(page, "record-without-extension")


PYTHON3 = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def _points_in_card(page: Page) -> int:
    """The point count of `loss` in the HTML card's metrics table, -1 before it shows."""
    row = page.locator(".jp-OutputArea-output tr", has_text="loss")
    if row.count() == 0:
        return -1
    return int(re.sub(r"\D", "", row.first.locator("td").last.inner_text()) or -1)


def test_the_live_view_is_the_html_card_redrawn_in_place_then_the_final_record(
    plain_lab: Lab, page: Page
) -> None:
    plain_lab.write_notebook(
        "live.ipynb",
        [
            nbf.new_code_cell("import nbtrack, time"),
            nbf.new_code_cell(
                "%%track -e plain -n no-extension\n"
                "for i in range(250):\n"
                "    nbtrack.log(loss=1.0 / (i + 1))\n"
                "    time.sleep(0.04)\n"
                "print('cell done')"
            ),
        ],
        kernelspec=PYTHON3,
    )
    plain_lab.open_notebook(page, "live.ipynb", outputs=0)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status=idle]", timeout=60_000)
    page.evaluate("() => { void window.jupyterapp.commands.execute('runmenu:run-all'); }")

    card = page.locator(".jp-OutputArea-output", has_text="no-extension")
    expect(card).to_have_count(1, timeout=60_000)
    expect(card).to_contain_text("RUNNING", timeout=30_000)
    # While the cell runs the card is redrawn in place, its chart the SVG (no PNG is made).
    deadline = time.monotonic() + 30
    while _points_in_card(page) < 1 and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    first = _points_in_card(page)
    assert first >= 1
    while _points_in_card(page) <= first and time.monotonic() < deadline:
        page.wait_for_timeout(300)
    assert first < _points_in_card(page) < 250
    expect(card).to_contain_text("RUNNING")
    expect(card).to_have_count(1)
    live_src = card.locator("img").first.get_attribute("src") or ""
    assert live_src.startswith("data:image/svg+xml,")
    plain_lab.screenshot(page, "live-view-without-extension")

    # At the end the same slot holds the final record, its chart the PNG; print output stays.
    expect(card).to_contain_text("FINISHED", timeout=60_000)
    expect(card).to_have_count(1)
    chart = card.locator("img").first
    expect(chart).to_have_attribute("src", re.compile(r"^data:image/png;base64,"), timeout=30_000)
    assert chart.evaluate("img => img.complete ? img.naturalWidth : 0") == 640
    expect(page.locator(".jp-OutputArea-output", has_text="cell done")).to_have_count(1)
    expect(page.locator(".nbtrack-record")).to_have_count(0)
    plain_lab.screenshot(page, "record-after-live-without-extension")
