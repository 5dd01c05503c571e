"""The live plot: throttled, bounded redraws, NaN/inf flagged, escaped status, clean close.

Real ipywidgets and plotly objects run in-process. Instead of a frontend, every widget gets a
comm that keeps what ipywidgets would put on the wire (message data and binary buffers), so the
tests count and measure the messages a notebook would actually receive.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import comm
import numpy as np
import pytest
from comm.base_comm import BaseComm

import nbtrack
from nbtrack import _sender
from nbtrack import run as runs
from nbtrack._curves import Curve
from nbtrack.run import Run
from nbtrack.sinks import plot
from nbtrack.sinks.display import DisplaySink
from nbtrack.sinks.plot import LivePlot


@dataclass
class Message:
    comm_id: str
    msg_type: str
    data: dict[str, Any]
    buffers: list[bytes]

    @property
    def size(self) -> int:
        """Bytes on the wire: the JSON part (buffers are stripped from it) and the buffers."""
        return len(json.dumps(self.data, default=str)) + sum(len(b) for b in self.buffers)

    def state(self) -> dict[str, Any]:
        return dict(self.data.get("state", {})) if self.data else {}


class Wire:
    """Every comm message the widgets send, in order."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.lock = threading.Lock()

    def to(self, model_id: str) -> list[Message]:
        return [m for m in self.messages if m.comm_id == model_id]

    def figure_updates(self, model_id: str) -> list[Message]:
        """One per batch_update that changed something: plotly's `update` message."""
        return [m for m in self.to(model_id) if m.state().get("_py2js_update")]


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Wire:
    recorded = Wire()

    class RecordingComm(BaseComm):
        def publish_msg(
            self,
            msg_type: str,
            data: Any = None,
            metadata: Any = None,  # noqa: ARG002 - part of the comm interface
            buffers: Any = None,
            **keys: Any,  # noqa: ARG002
        ) -> None:
            message = Message(self.comm_id, msg_type, data or {}, [bytes(b) for b in buffers or []])
            with recorded.lock:
                recorded.messages.append(message)

    monkeypatch.setattr(comm, "create_comm", RecordingComm)
    return recorded


@pytest.fixture(autouse=True)
def _plotly_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("NBTRACK_PLOT_INTERVAL", raising=False)
    # The first chart waits for plotly's background import; tests start once it is done.
    plot._start_plotly_import()
    assert plot._plotly_imported.wait(120), "plotly did not import within two minutes"
    assert plot._plotly_error is None, plot._plotly_error


def make_run(name: str = "smoke", ui_url: str | None = None) -> Run:
    return Run(
        run_name=name,
        experiment_name="live-plot",
        tracking_uri="sqlite:///unused.db",
        ui_url=ui_url,
    )


def add_points(run: Run, name: str, values: Any, start: int = 0) -> None:
    values = np.asarray(values, dtype=np.float64)
    curve = run.curves.setdefault(name, Curve())
    curve.extend(np.arange(start, start + len(values)), values)


def redraw_now(live: LivePlot, run: Run) -> None:
    """Redraw without waiting for the throttle interval (it is not what these tests check)."""
    live._next_draw = 0.0
    live.update(run)


def figure_of(live: LivePlot) -> Any:
    assert live._chart is not None, "the chart was never built"
    return live._chart.figure


def traces(live: LivePlot) -> dict[str, Any]:
    return {t.name: t for t in figure_of(live).data}


@pytest.fixture
def live_run(wire: Wire) -> Iterator[tuple[LivePlot, Run]]:
    run = make_run()
    live = LivePlot(run)
    yield live, run
    live.close()


# ---------------------------------------------------------------- throttling and payload


def test_redraws_are_throttled_for_100k_log_calls(
    wire: Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    interval = 0.05
    monkeypatch.setenv("NBTRACK_PLOT_INTERVAL", str(interval))
    run = make_run()
    sink = DisplaySink()
    sink.live = LivePlot(run)
    run.sinks = [sink]  # type: ignore[list-item]
    runs.activate(run)
    drains = 0
    started = time.monotonic()
    try:
        for step in range(100_000):
            nbtrack.log(loss=1.0 / (step + 1), acc=step / 100_000)
            if step % 100 == 99:
                # What the sender thread does every 0.5 s, here every 100 calls so that the
                # plot is asked to update a thousand times.
                _sender.drain(run)
                drains += 1
        figure_id = figure_of(sink.live).model_id
        # The last points arrived inside a throttle interval: the trailing redraw shows them.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with run.drain_lock:
                if traces(sink.live)["loss"].x[-1] == 99_999:
                    break
            time.sleep(0.01)
    finally:
        runs.deactivate(run)
        runs.forget(run)
        sink.live.close()
    elapsed = time.monotonic() - started
    assert traces(sink.live)["loss"].x[-1] == 99_999
    assert drains == 1000
    redraws = len(wire.figure_updates(figure_id))
    assert 1 <= redraws <= 1 + elapsed / interval
    assert redraws < drains / 4


def test_redraw_payload_is_bounded_after_200k_points(
    live_run: tuple[LivePlot, Run], wire: Wire
) -> None:
    live, run = live_run
    rng = np.random.default_rng(0)
    for name in ("train/loss", "val/loss", "lr"):
        add_points(run, name, rng.random(200_000))
    redraw_now(live, run)
    figure = figure_of(live)
    figure_id = figure.model_id
    sizes = []
    for more in range(2):
        for name in ("train/loss", "val/loss", "lr"):
            add_points(run, name, rng.random(200_000), start=200_000 * (more + 1))
        redraw_now(live, run)
        sizes.append(wire.figure_updates(figure_id)[-1].size)
    for trace in figure.data:
        assert len(trace.x) <= 1000
        assert len(trace.x) == len(trace.y)
    # Three curves of at most 1000 (step, value) float64 pairs, plus the message's JSON.
    assert max(sizes) < 3 * 1000 * 16 + 20_000
    # Twice the points, the same payload.
    assert sizes[1] <= sizes[0] * 1.05


def test_unchanged_curves_are_not_redrawn(live_run: tuple[LivePlot, Run], wire: Wire) -> None:
    live, run = live_run
    add_points(run, "loss", [3.0, 2.0, 1.0])
    add_points(run, "acc", [0.1, 0.2, 0.3])
    redraw_now(live, run)
    figure = figure_of(live)
    before = len(wire.to(figure.model_id))
    redraw_now(live, run)
    assert len(wire.to(figure.model_id)) == before

    add_points(run, "acc", [0.4], start=3)
    redraw_now(live, run)
    update = wire.figure_updates(figure.model_id)[-1].state()["_py2js_update"]
    acc_index = [t.name for t in figure.data].index("acc")
    assert update["style_traces"] == [acc_index]


def test_metric_appearing_mid_run_gets_its_own_trace(live_run: tuple[LivePlot, Run]) -> None:
    live, run = live_run
    add_points(run, "train/loss", [2.0, 1.5, 1.0])
    redraw_now(live, run)
    assert [name for name in traces(live) if "non-finite" not in name] == ["train/loss"]

    add_points(run, "val/loss", [1.2])
    add_points(run, "lr", [1e-3])
    redraw_now(live, run)
    shown = traces(live)
    assert list(shown["val/loss"].y) == [1.2]
    # Losses share a panel; the learning rate gets its own.
    assert shown["val/loss"].yaxis == shown["train/loss"].yaxis
    assert shown["lr"].yaxis != shown["train/loss"].yaxis


# ---------------------------------------------------------------- NaN / inf


def test_nan_is_flagged_in_the_status_line_and_on_the_chart(
    live_run: tuple[LivePlot, Run],
) -> None:
    live, run = live_run
    values = np.linspace(2.0, 0.5, 1000)
    values[500] = np.nan
    values[700] = np.inf
    add_points(run, "loss", values)
    add_points(run, "acc", np.linspace(0, 1, 1000))
    redraw_now(live, run)

    status = live._status.value
    assert "loss became NaN at step 500" in status
    assert "2 non-finite values" in status
    assert "acc became" not in status

    shown = traces(live)
    marks = shown["loss (non-finite)"]
    assert list(marks.x) == [500, 700]
    assert list(marks.text) == ["NaN", "inf"]
    # The line breaks where the value was not finite instead of skipping the point.
    line = shown["loss"]
    assert np.isnan(line.y[list(line.x).index(500)])
    assert np.isnan(line.y[list(line.x).index(700)])
    assert len(shown["acc (non-finite)"].x) == 0


def test_nan_survives_decimation_of_a_long_curve(live_run: tuple[LivePlot, Run]) -> None:
    live, run = live_run
    values = np.linspace(2.0, 0.5, 300_000)
    values[123_457] = np.nan
    add_points(run, "loss", values)
    redraw_now(live, run)
    assert list(traces(live)["loss (non-finite)"].x) == [123_457]
    assert "became NaN at step 123,457" in live._status.value


# ---------------------------------------------------------------- the status line


def test_status_line_escapes_the_run_name(wire: Wire) -> None:
    evil = "<img src=x onerror=alert(1)>"
    run = make_run(name=evil, ui_url="http://localhost:5000/#/experiments/1/runs/abc")
    live = LivePlot(run)
    try:
        add_points(run, "loss<script>", [1.0])
        redraw_now(live, run)
        status = live._status.value
    finally:
        live.close()
    assert "<img" not in status
    assert "<script>" not in status
    assert "&lt;img src=x onerror=alert(1)&gt;" in status
    assert "href='http://localhost:5000/#/experiments/1/runs/abc'" in status


@pytest.mark.parametrize(
    ("ui_url", "href"),
    [
        ("javascript:alert(1)", None),
        ("data:text/html,<script>alert(1)</script>", None),
        ("http://user:hunter2@mlflow.example:5000/#/runs/1", "http://mlflow.example:5000/#/runs/1"),
        (None, None),
    ],
)
def test_status_line_links_only_to_web_urls_without_credentials(
    wire: Wire, ui_url: str | None, href: str | None
) -> None:
    live = LivePlot(make_run(ui_url=ui_url))
    status = live._status.value
    live.close()
    assert "hunter2" not in status
    assert "javascript:" not in status
    if href is None:
        assert "<a " not in status
    else:
        assert f"href='{href}'" in status


def test_status_line_shows_step_values_and_sync_state(live_run: tuple[LivePlot, Run]) -> None:
    live, run = live_run
    add_points(run, "loss", [0.5, 0.25], start=41)
    run.sync_state = "offline"
    run.pending_points = 1234
    redraw_now(live, run)
    status = live._status.value
    assert "step 42" in status
    assert "loss <b>0.25</b>" in status
    assert "offline: 1,234 points wait in the local spool" in status


# ---------------------------------------------------------------- closing


def _open_comms(wire: Wire) -> set[str]:
    opened = {m.comm_id for m in wire.messages if m.msg_type == "comm_open"}
    closed = {m.comm_id for m in wire.messages if m.msg_type == "comm_close"}
    return opened - closed


def test_close_closes_every_widget(wire: Wire) -> None:
    run = make_run()
    live = LivePlot(run)
    add_points(run, "loss", [1.0, 0.5])
    redraw_now(live, run)
    figure = figure_of(live)
    assert _open_comms(wire)

    live.close()
    assert live.widget.comm is None
    assert live._status.comm is None
    assert figure.comm is None
    # Layout and style models included: nothing this plot opened is left open.
    assert _open_comms(wire) == set()

    sent = len(wire.messages)
    add_points(run, "loss", [0.25], start=2)
    redraw_now(live, run)
    live.close()
    assert len(wire.messages) == sent


def test_redraw_racing_close_is_harmless(wire: Wire, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBTRACK_PLOT_INTERVAL", "0")
    run = make_run()
    live = LivePlot(run)
    add_points(run, "loss", [1.0])
    redraw_now(live, run)
    errors: list[BaseException] = []
    stop = threading.Event()

    def sender() -> None:
        step = 1
        try:
            while not stop.is_set():
                with run.drain_lock:
                    add_points(run, f"m{step % 7}", [1.0 / step], start=step)
                    live.update(run)
                step += 1
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            errors.append(error)

    thread = threading.Thread(target=sender)
    thread.start()
    time.sleep(0.2)
    live.close()
    closed_at = len(wire.messages)
    time.sleep(0.1)
    stop.set()
    thread.join(10)
    assert not errors
    assert len(wire.messages) == closed_at
    assert _open_comms(wire) == set()


def test_nothing_is_drawn_after_the_run_ended(live_run: tuple[LivePlot, Run], wire: Wire) -> None:
    live, run = live_run
    add_points(run, "loss", [1.0])
    redraw_now(live, run)
    sent = len(wire.messages)
    run.status = runs.Status.FINISHED
    add_points(run, "loss", [0.5], start=1)
    redraw_now(live, run)
    assert len(wire.messages) == sent


# ---------------------------------------------------------------- configuration


def test_bad_interval_setting_warns_and_uses_the_default(
    wire: Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NBTRACK_PLOT_INTERVAL", "fast")
    with pytest.warns(nbtrack.errors.NbtrackWarning, match="NBTRACK_PLOT_INTERVAL='fast'"):
        live = LivePlot(make_run())
    assert live.interval == 0.5
    live.close()
