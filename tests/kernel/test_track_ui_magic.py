"""`%track_ui` in a real kernel: starts an MLflow UI for the kernel's store and links it, and
records made afterwards link their run in it."""

from __future__ import annotations

import re
import urllib.request

import pytest
from helpers.kernels import Kernel

pytestmark = [pytest.mark.kernel, pytest.mark.server]

RECORD = "application/vnd.nbtrack.run+json"


def test_track_ui_starts_a_ui_and_records_link_into_it(store, tmp_path, monkeypatch):
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(tmp_path / "state"))
    kernel = Kernel(tmp_path)
    try:
        reply, outputs = kernel.run("%load_ext nbtrack\n%track_ui", timeout=180)
        assert reply["status"] == "ok", reply
        shown = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
        match = re.search(r'href="(http://127\.0\.0\.1:\d+/)"', shown)
        assert match, shown
        url = match.group(1)
        with urllib.request.urlopen(url + "health", timeout=10) as answer:  # noqa: S310 - loopback
            assert answer.status == 200

        # A second call reuses the running UI instead of starting another.
        _, outputs = kernel.run("%track_ui")
        assert url in "".join(o.get("data", {}).get("text/html", "") for o in outputs)

        _, outputs = kernel.run("%%track -e linked\nnbtrack.log(loss=1.0)")
        record = next(o["data"][RECORD] for o in outputs if RECORD in o.get("data", {}))
        assert record["ui_url"].startswith(f"{url}#/experiments/")
        # In MLflow's model-training view, which MLflow 3.17's UI reads from the address.
        assert record["ui_url"].endswith(
            f"/runs/{record['run']['id']}?workflowType=machine_learning"
        )
        kernel.run("from nbtrack.ui.process import stop_ui\nstop_ui()")
    finally:
        kernel.shutdown()
