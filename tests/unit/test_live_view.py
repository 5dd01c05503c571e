"""The live view: the run's record, redrawn in place, throttled, bounded, and final at the end.

Every call the view makes to IPython's display machinery is kept (what a frontend would
receive: bundles and display ids), so the tests count and measure the messages. JupyterLab
itself is in tests/browser/test_live_view_lab.py.
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from helpers.spies import Recorder

import nbtrack
from nbtrack import _registry, _sender
from nbtrack._buffer import Buffer
from nbtrack._curves import Curve
from nbtrack._model import Run, RunFailure, Status
from nbtrack._registry import TrackedRun
from nbtrack.view.live import LiveView

RECORD = "application/vnd.nbtrack.run+json"


@dataclass
class Screen:
    """What the frontend would have been sent: each display and update, in order."""

    shown: list[tuple[str, str | None, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def updates(self) -> list[dict[str, Any]]:
        return [bundle for kind, _, bundle in self.shown if kind == "update"]

    def last(self) -> dict[str, Any]:
        return self.shown[-1][2]


@pytest.fixture
def screen(monkeypatch: pytest.MonkeyPatch) -> Screen:
    import IPython.display

    seen = Screen()
    counter = iter(range(1, 1_000_000))

    class Handle:
        def __init__(self) -> None:
            self.display_id = f"display-{next(counter)}"

    def display(bundle: Any, raw: bool = False, display_id: Any = None) -> Handle | None:
        assert raw, "the view sends ready bundles"
        handle = Handle() if display_id is True else None
        with seen.lock:
            seen.shown.append(("display", handle and handle.display_id, bundle))
        return handle

    def update_display(bundle: Any, raw: bool = False, display_id: Any = None) -> None:
        assert raw
        with seen.lock:
            seen.shown.append(("update", display_id, bundle))

    monkeypatch.setattr(IPython.display, "display", display)
    monkeypatch.setattr(IPython.display, "update_display", update_display)
    monkeypatch.delenv("NBTRACK_PLOT_INTERVAL", raising=False)
    return seen


def make_run(name: str = "smoke", ui_url: str | None = None, live: bool = True) -> Run:
    return Run(
        run_name=name,
        experiment_name="live-view",
        tracking_uri="sqlite:///unused.db",
        ui_url=ui_url,
        live_view=live,
    )


def add_points(run: Run, name: str, values: Any, start: int = 0) -> None:
    values = np.asarray(values, dtype=np.float64)
    curve = run.curves.setdefault(name, Curve())
    curve.extend(np.arange(start, start + len(values)), values)


def redraw_now(view: LiveView, run: Run) -> None:
    """Redraw without waiting for the throttle interval (it is not what these tests check)."""
    view._next_draw = 0.0
    view.update(run, None)  # type: ignore[arg-type]


@pytest.fixture
def live(screen: Screen) -> Iterator[tuple[LiveView, Run]]:
    run = make_run()
    view = LiveView(run, threading.Lock())
    yield view, run
    view.finish(run)


def size(bundle: dict[str, Any]) -> int:
    return len(json.dumps(bundle))


# ---------------------------------------------------------------- one picture, in place


def test_the_slot_shows_the_record_from_the_start_and_updates_it_in_place(
    screen: Screen, live: tuple[LiveView, Run]
) -> None:
    view, run = live
    kind, display_id, first = screen.shown[0]
    assert (kind, display_id) == ("display", view.display_id)
    assert first[RECORD]["run"]["status"] == "RUNNING"
    add_points(run, "loss", [1.0, 0.5])
    redraw_now(view, run)
    kind, display_id, bundle = screen.shown[-1]
    assert (kind, display_id) == ("update", view.display_id)
    assert bundle[RECORD]["metrics"]["loss"]["last"] == 0.5
    # The same renderings as the saved record: HTML with the chart and plain text; no widget.
    assert {"text/html", "text/plain", RECORD} <= set(bundle)
    assert "application/vnd.jupyter.widget-view+json" not in bundle
    assert "<svg" in bundle["text/html"] or "image/svg+xml" in bundle["text/html"]
    # Nothing but display and in-place updates: no clear_output, no second output.
    assert [kind for kind, _, _ in screen.shown].count("display") == 1


def test_the_end_leaves_the_final_record_where_the_live_view_was(
    screen: Screen, live: tuple[LiveView, Run]
) -> None:
    view, run = live
    add_points(run, "loss", [1.0, 0.5, 0.25])
    redraw_now(view, run)
    run.status = Status.FAILED
    run.failure = RunFailure("ValueError", "diverged", step=2)
    run.end_time_ms = run.start_time_ms + 1000
    view.finish(run)
    kind, display_id, bundle = screen.shown[-1]
    assert (kind, display_id) == ("update", view.display_id)
    record = bundle[RECORD]
    assert record["run"]["status"] == "FAILED"
    assert record["error"] == {"type": "ValueError", "message": "diverged", "step": 2}
    drawn = len(screen.shown)
    add_points(run, "loss", [0.1], start=3)
    redraw_now(view, run)  # a late batch: the record stays as it ended
    assert len(screen.shown) == drawn


def test_live_redraws_leave_the_png_out_and_the_final_record_has_it(
    screen: Screen, live: tuple[LiveView, Run]
) -> None:
    view, run = live
    add_points(run, "loss", [1.0, 0.5, 0.25])
    redraw_now(view, run)
    live_bundle = screen.last()
    # Rasterising at every redraw would cost the kernel CPU twice a second for nothing: while
    # the cell runs the HTML card embeds the SVG chart.
    assert "image/png" not in live_bundle
    assert "data:image/svg+xml," in live_bundle["text/html"]
    run.status = Status.FINISHED
    run.end_time_ms = run.start_time_ms + 1000
    view.finish(run)
    final = screen.last()
    assert final["image/png"]
    assert f"data:image/png;base64,{final['image/png']}" in final["text/html"]


def test_where_nobody_waits_the_end_shows_the_record_at_once_and_adds_its_png_in_place(
    screen: Screen, live: tuple[LiveView, Run]
) -> None:
    view, run = live
    add_points(run, "loss", [1.0, 0.5, 0.25])
    run.status = Status.FINISHED
    run.end_time_ms = run.start_time_ms + 1000
    drawn = len(screen.shown)
    view.finish(run, png_later=True)
    # Rasterising (20-45 ms) is not part of the cell's end: the final record comes first...
    with screen.lock:
        kind, display_id, at_end = screen.shown[drawn]
    assert (kind, display_id) == ("update", view.display_id)
    assert at_end[RECORD]["run"]["status"] == "FINISHED"
    assert "image/png" not in at_end
    assert "data:image/svg+xml," in at_end["text/html"]
    # ... and its PNG in place, a moment later, with nothing else changed.
    deadline = time.monotonic() + 10
    while len(screen.shown) == drawn + 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    kind, display_id, whole = screen.shown[drawn + 1]
    assert (kind, display_id) == ("update", view.display_id)
    assert f"data:image/png;base64,{whole['image/png']}" in whole["text/html"]
    assert whole[RECORD] == at_end[RECORD]
    time.sleep(0.2)
    assert len(screen.shown) == drawn + 2  # drawn once more, not again


def test_a_run_without_metrics_is_drawn_once_at_its_end(
    screen: Screen, live: tuple[LiveView, Run]
) -> None:
    view, run = live
    run.status = Status.FINISHED
    drawn = len(screen.shown)
    view.finish(run, png_later=True)  # no chart, so no PNG to add afterwards
    time.sleep(0.2)
    assert len(screen.shown) == drawn + 1
    assert screen.last()[RECORD]["run"]["status"] == "FINISHED"


def test_redraws_after_the_end_do_not_rasterise_the_same_chart_again(
    screen: Screen, monkeypatch: pytest.MonkeyPatch
) -> None:
    # After its cell a record is redrawn as its upload goes on (a run id, then "synced"), with
    # the same chart; resvg holds the GIL while it works, which would stall the next cell.
    import resvg_py

    calls = []
    rasterise = resvg_py.svg_to_bytes

    def counted(**kwargs: Any) -> Any:
        calls.append(kwargs["svg_string"])
        return rasterise(**kwargs)

    monkeypatch.setattr(resvg_py, "svg_to_bytes", counted)
    run = make_run(name=f"redrawn-{time.monotonic_ns()}")  # a chart no other test drew
    view = LiveView(run, threading.Lock())
    add_points(run, "loss", [1.0, 0.5, 0.25])
    run.status = Status.FINISHED
    run.end_time_ms = run.start_time_ms + 1000
    view.finish(run)
    assert len(calls) == 1
    run.run_id, run.sync_state = "0123456789abcdef", "synced"
    view.refresh(run)
    assert screen.last()[RECORD]["sync"]["state"] == "synced"
    assert screen.last()["image/png"]
    assert len(calls) == 1


def test_headless_the_slot_is_a_notice_until_the_record_replaces_it(screen: Screen) -> None:
    run = make_run(live=False)
    view = LiveView(run, threading.Lock())
    assert screen.shown[0][2]["text/plain"].startswith("nbtrack: tracking run 'smoke'")
    add_points(run, "loss", [1.0])
    redraw_now(view, run)
    assert len(screen.shown) == 1  # nobody watches: no redraws
    run.status = Status.FINISHED
    view.finish(run)
    assert screen.shown[-1][0] == "update"
    assert RECORD in screen.last()


# ---------------------------------------------------------------- throttling and payload


def test_redraws_are_throttled_for_100k_log_calls(
    screen: Screen, monkeypatch: pytest.MonkeyPatch
) -> None:
    interval = 0.05
    monkeypatch.setenv("NBTRACK_PLOT_INTERVAL", str(interval))
    run = make_run()
    tracked = TrackedRun(run, Buffer(), Recorder())
    view = LiveView(run, tracked.drain_lock)
    tracked.views.append(view)
    _registry.activate(tracked)
    _registry.forget(tracked)  # drained here, not by a sender thread of another test
    drains = 0
    started = time.monotonic()
    try:
        for step in range(100_000):
            nbtrack.log(loss=1.0 / (step + 1), acc=step / 100_000)
            if step % 100 == 99:
                # What the sender thread does every 0.5 s, here every 100 calls so that the
                # view is asked to update a thousand times.
                _sender.drain(tracked)
                drains += 1
        # The last points arrived inside a throttle interval: the trailing redraw shows them.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with screen.lock:
                last_step = screen.last()[RECORD]["metrics"]["loss"]["last_step"]
            if last_step == 99_999:
                break
            time.sleep(0.01)
    finally:
        _registry.deactivate(tracked)
    elapsed = time.monotonic() - started
    assert screen.last()[RECORD]["metrics"]["loss"]["last_step"] == 99_999
    assert drains == 1000
    redraws = len(screen.updates())
    assert 1 <= redraws <= 1 + elapsed / interval
    assert redraws < drains / 4
    view.finish(run)


def test_redraws_come_at_most_twice_a_second_by_default(
    screen: Screen, live: tuple[LiveView, Run]
) -> None:
    view, run = live
    assert view.interval == 0.5
    for step in range(50):
        add_points(run, "loss", [1.0], start=step)
        with view._drain_lock:
            view.update(run, None)  # type: ignore[arg-type]
        time.sleep(0.02)  # 50 batches over ~1 s
    time.sleep(0.6)  # the trailing redraw
    assert 2 <= len(screen.updates()) <= 4
    assert screen.last()[RECORD]["metrics"]["loss"]["last_step"] == 49


def test_redraw_payload_is_bounded_after_200k_points(
    screen: Screen, live: tuple[LiveView, Run]
) -> None:
    view, run = live
    rng = np.random.default_rng(0)
    sizes = []
    for more in range(3):
        for name in ("train/loss", "val/loss", "lr"):
            add_points(run, name, rng.random(200_000), start=200_000 * more)
        redraw_now(view, run)
        sizes.append(size(screen.last()))
    # The record's budget: under 100 KB whatever the number of points, every rendering in.
    assert max(sizes) < 100_000
    # Three times the points, the same payload.
    assert sizes[2] <= sizes[0] * 1.1
    for metric in screen.last()[RECORD]["metrics"].values():
        assert len(metric["curve"]["steps"]) <= 300


def test_unchanged_curves_are_not_redrawn(screen: Screen, live: tuple[LiveView, Run]) -> None:
    view, run = live
    add_points(run, "loss", [1.0, 0.5])
    redraw_now(view, run)
    drawn = len(screen.shown)
    for _ in range(5):
        redraw_now(view, run)
    assert len(screen.shown) == drawn
    run.sync_state = "synced"  # not a curve, but shown: worth a redraw
    redraw_now(view, run)
    assert len(screen.shown) == drawn + 1


def test_a_metric_appearing_mid_run_gets_its_panel(
    screen: Screen, live: tuple[LiveView, Run]
) -> None:
    view, run = live
    add_points(run, "train/loss", np.linspace(2, 1, 50))
    redraw_now(view, run)
    add_points(run, "val/acc", [0.5, 0.7])
    redraw_now(view, run)
    panels = screen.last()[RECORD]["panels"]
    assert ["val/acc"] in panels
    assert any("train/loss" in panel for panel in panels)


def test_nan_is_flagged_in_the_view_and_survives_decimation(
    screen: Screen, live: tuple[LiveView, Run]
) -> None:
    view, run = live
    values = np.linspace(1.0, 0.1, 100_000)
    values[73_456] = np.nan
    add_points(run, "loss", values)
    redraw_now(view, run)
    bundle = screen.last()
    loss = bundle[RECORD]["metrics"]["loss"]
    assert loss["nonfinite"] == 1
    assert "NaN" in loss["curve"]["values"]
    assert "NaN" in bundle["text/html"]


def test_the_view_escapes_the_run_name_and_links_only_to_web_urls(screen: Screen) -> None:
    hostile = "<img src=x onerror=alert(1)>"
    for url in ("javascript:alert(1)", "http://alice:hunter2@mlflow.example/#/runs/1"):
        run = make_run(name=hostile, ui_url=url)
        view = LiveView(run, threading.Lock())
        add_points(run, "loss", [1.0, 0.5])
        redraw_now(view, run)
        html = screen.last()["text/html"]
        assert "<img src=x" not in html
        assert "javascript:" not in html
        assert "hunter2" not in json.dumps(screen.last())
        view.finish(run)


@pytest.mark.parametrize(
    ("pending", "line"),
    [
        (1200, "1,200 points are still on their way to MLflow"),
        # Every point is in MLflow and only the run's end (status, last tags) is still on its
        # way, as after a cell whose points were all lost to a full disk: no "0 points".
        (0, "the run's end is still on its way to MLflow"),
    ],
)
def test_the_view_shows_step_values_and_sync_state(
    screen: Screen, live: tuple[LiveView, Run], pending: int, line: str
) -> None:
    view, run = live
    add_points(run, "loss", np.linspace(1, 0.25, 1235))
    run.sync_state, run.pending_points = "syncing", pending
    redraw_now(view, run)
    text = screen.last()["text/plain"]
    assert "1234" in text.replace(",", "")
    assert "0.25" in text
    assert screen.last()[RECORD]["sync"] == {"state": "syncing", "pending_points": pending}
    assert line in text
    assert line in html.unescape(screen.last()["text/html"])
    assert not re.search(r"\b0 points", text)


def test_points_that_could_not_be_stored_are_counted_live_and_in_the_final_record(
    screen: Screen, live: tuple[LiveView, Run]
) -> None:
    from nbtrack.record import parse_record

    view, run = live
    add_points(run, "loss", np.linspace(1, 0.25, 1000))
    run.sync_state, run.pending_points = "syncing", 10
    run.lost_points, run.lost_reason = 990, "No space left on device"
    view.update(run, None)  # type: ignore[arg-type] # a loss is news: redrawn
    live_record = screen.last()[RECORD]
    assert live_record["sync"]["lost_points"] == 990
    assert "990 points not stored" in screen.last()["text/plain"]
    run.status, run.sync_state, run.pending_points = Status.FAILED, "synced", 0
    run.end_time_ms = run.start_time_ms + 1000
    view.finish(run)
    final = screen.last()
    record = parse_record(final[RECORD])
    assert record["run"]["status"] == "FAILED"
    assert record["sync"] == {
        "state": "synced",
        "pending_points": 0,
        "lost_points": 990,
        "lost_items": 0,
        "lost_reason": "No space left on device",
    }
    line = (
        "990 points not stored: nbtrack could not write its local journal (No space left on device)"
    )
    # Said once, as the reason the run failed: not as "stopped at step 999".
    assert final["text/plain"].count(line) == 1
    assert "stopped" not in final["text/plain"]
    assert final["text/html"].count(line) == 1


def test_a_redraw_racing_the_end_is_harmless(screen: Screen) -> None:
    run = make_run()
    lock = threading.Lock()
    view = LiveView(run, lock)
    stop = threading.Event()
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            step = 0
            while not stop.is_set():
                with lock:
                    add_points(run, "loss", [1.0], start=step)
                    view._next_draw = 0.0
                    view.update(run, None)  # type: ignore[arg-type]
                step += 1
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            errors.append(error)

    thread = threading.Thread(target=hammer)
    thread.start()
    time.sleep(0.2)
    run.status = Status.FINISHED
    view.finish(run)
    final = len(screen.shown)
    stop.set()
    thread.join()
    assert not errors
    assert len(screen.shown) == final  # nothing drawn over the final record
    assert screen.last()[RECORD]["run"]["status"] == "FINISHED"


def test_a_bad_interval_setting_warns_and_uses_the_default(
    screen: Screen, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NBTRACK_PLOT_INTERVAL", "fast")
    with pytest.warns(nbtrack.errors.NbtrackWarning, match="NBTRACK_PLOT_INTERVAL='fast'"):
        view = LiveView(make_run(), threading.Lock())
    assert view.interval == 0.5
    assert screen.shown
