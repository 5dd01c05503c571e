"""Fixtures for browser tests: one JupyterLab server per session (`lab`), headless Chromium
(`chromium`), and a fresh page per test (`page`, with `page_events`). See helpers/lab.py."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.lab import CHROMIUM, CHROMIUM_ARGS, Lab, PageEvents, running_lab
from playwright.sync_api import Browser, Page, sync_playwright


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A JupyterLab server on 127.0.0.1 for the whole session, serving a temp root folder."""
    with running_lab(
        tmp_path_factory.mktemp("jupyter-home"), tmp_path_factory.mktemp("lab-root")
    ) as server:
        yield server


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    """Debian's headless Chromium driven by Playwright (its own browser download fails here)."""
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page_events() -> PageEvents:
    """Dialogs and uncaught errors of the test's page."""
    return PageEvents()


@pytest.fixture
def page(chromium: Browser, page_events: PageEvents) -> Iterator[Page]:
    """A fresh browser page (own cookies and storage); dialogs are recorded and dismissed."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()

    def on_dialog(dialog: Any) -> None:
        page_events.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: page_events.errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
