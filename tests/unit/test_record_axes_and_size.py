"""Record schema 3: point times and each panel's x axis, the PNG chart, and bounds on what a
record carries (many metrics) and on what a reader accepts (huge or deep records)."""

from __future__ import annotations

import base64
import io
import json
import math
import xml.etree.ElementTree as ET
from typing import Any

import nbformat
import numpy as np
import pytest
from PIL import Image

from nbtrack._curves import _MAX_POINTS, Curve
from nbtrack.errors import InvalidRecordError
from nbtrack.record import MIME_TYPE, RecordSource, build_bundle, parse_record
from nbtrack.record.axes import aligned_axis
from nbtrack.record.schema import MAX_RECORD_DEPTH, record_layout

SVG = "{http://www.w3.org/2000/svg}"
START_S = 1_763_779_200.0


def _curve(steps: Any, values: Any, seconds: Any) -> Curve:
    curve = Curve()
    curve.extend(np.asarray(steps, float), np.asarray(values, float), np.asarray(seconds, float))
    return curve


def _source(curves: dict[str, Curve], **changes: Any) -> RecordSource:
    fields: dict[str, Any] = {
        "run_id": "5f3c1a2b9d8e4f70a1b2c3d4e5f60718",
        "run_name": "baseline",
        "experiment_id": "1",
        "experiment_name": "quickstart",
        "status": "FINISHED",
        "start_time_ms": int(START_S * 1000),
        "end_time_ms": int(START_S * 1000) + 62_000,
        "tracking_uri": None,
        "ui_url": None,
        "notebook_path": "01_quickstart.ipynb",
        "cell_id": None,
        "params": {"lr": "0.003"},
        "curves": curves,
    }
    fields.update(changes)
    return RecordSource(**fields)


def _quickstart_curves() -> dict[str, Curve]:
    """As the quickstart logs them: train/loss every batch (steps 0-944), val/loss and val/acc
    once per epoch with step=epoch (steps 0-14), over the same minute."""
    batches = np.arange(945)
    epochs = np.arange(15)
    batch_time = START_S + 0.5 + batches * 0.063
    epoch_time = START_S + 0.5 + (epochs + 1) * 63 * 0.063
    return {
        "train/loss": _curve(batches, 0.7 * np.exp(-batches / 200) + 0.05, batch_time),
        "val/loss": _curve(epochs, 0.6 * np.exp(-epochs / 3) + 0.08, epoch_time),
        "val/acc": _curve(epochs, 0.99 - 0.4 * np.exp(-epochs / 3), epoch_time),
    }


def _x_titles(svg: str) -> list[str | None]:
    root = ET.fromstring(svg)  # noqa: S314 - our own output
    return [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "x-title"]


def _saved_size(bundle: dict[str, Any]) -> int:
    """Bytes the bundle adds to a notebook saved by nbformat (indented JSON)."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("train()")])
    empty = len(nbformat.writes(notebook).encode())
    notebook.cells[0].outputs = [nbformat.v4.new_output("display_data", data=bundle)]
    return len(nbformat.writes(notebook).encode()) - empty


# ------------------------------------------------------------------ times and the x axis


def test_curves_keep_each_points_time_through_folding() -> None:
    curve = Curve()
    n = _MAX_POINTS + 5000
    steps = np.arange(n, dtype=float)
    # A time that is a known function of the step: any misalignment after folding shows.
    curve.extend(steps, np.sin(steps / 100), START_S + steps * 0.01)
    kept_steps, _ = curve.points()
    assert len(kept_steps) < n  # folded
    np.testing.assert_allclose(curve.seconds(), START_S + kept_steps * 0.01)


def test_a_panel_mixing_per_batch_and_per_epoch_steps_is_drawn_against_time() -> None:
    bundle = build_bundle(_source(_quickstart_curves()))
    record = parse_record(bundle[MIME_TYPE])
    assert record["panels"] == [["train/loss", "val/loss"], ["val/acc"]]
    # The loss panel lines up only in time; val/acc alone lines up with itself by step.
    assert record["panel_x"] == ["relative", "step"]
    val = record["metrics"]["val/loss"]["curve"]
    assert len(val["times"]) == len(val["steps"]) == 15
    assert val["times"][-1] == pytest.approx(0.5 + 15 * 63 * 0.063, abs=0.01)
    # The chart says which axis each panel uses.
    assert _x_titles(bundle["image/svg+xml"]) == ["time since start (s)", "step"]


def test_series_logged_at_the_same_rate_stay_on_the_step_axis() -> None:
    steps = np.arange(500)
    seconds = START_S + steps * 0.1
    curves = {
        "train/loss": _curve(steps, np.exp(-steps / 100), seconds),
        "val/loss": _curve(steps[::50], np.exp(-steps[::50] / 100), seconds[::50]),
    }
    record = build_bundle(_source(curves))[MIME_TYPE]
    assert record["panel_x"] == ["step"]


def test_without_times_the_step_is_the_only_axis() -> None:
    assert aligned_axis([([0, 1, 2], None), ([0, 100, 900], None)]) == "step"
    assert aligned_axis([([0, 944], [0.0, 60.0]), ([0, 14], [4.0, 60.0])]) == "relative"


def test_a_schema_2_record_is_still_read_against_the_step() -> None:
    record = build_bundle(_source(_quickstart_curves()))[MIME_TYPE]
    old = {k: v for k, v in record.items() if k not in ("panel_x", "metrics_omitted")}
    old["schema"] = 2
    for metric in old["metrics"].values():
        metric["curve"].pop("times")
    parse_record(old)
    assert record_layout(old) == [(["train/loss", "val/loss"], "step"), (["val/acc"], "step")]


# ------------------------------------------------------------------ the PNG


def test_the_png_is_the_svg_chart_rasterised() -> None:
    bundle = build_bundle(_source(_quickstart_curves()))
    png = base64.b64decode(bundle["image/png"])
    svg = ET.fromstring(bundle["image/svg+xml"])  # noqa: S314
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        assert image.size == (int(svg.get("width", 0)), int(svg.get("height", 0)))
        colours = {rgb for _, rgb in image.convert("RGB").getcolors(maxcolors=1 << 16) or []}
    # The series colours of the SVG (train/loss blue, val/loss red, val/acc green) are drawn.
    for hex_colour in ("#1f77b4", "#d62728", "#2ca02c"):
        target = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
        assert target in colours
    assert len(png) < 16 * 1024


# ------------------------------------------------------------------ size, however many metrics


def _random_walks(n_metrics: int, points: int) -> dict[str, Curve]:
    rng = np.random.default_rng(1)
    steps = np.arange(points)
    return {
        f"layer{i}/weight_norm_{i % 7}": _curve(
            steps, rng.standard_normal(points).cumsum(), START_S + steps * 0.01
        )
        for i in range(n_metrics)
    }


def test_a_100k_step_run_adds_under_100_kb_with_its_png() -> None:
    rng = np.random.default_rng(0)
    steps = np.arange(100_000)
    curves = {
        # Random walks: the worst case for decimation and for the PNG's compression.
        name: _curve(steps, rng.standard_normal(len(steps)).cumsum(), START_S + steps * 0.01)
        for name in ("train/loss", "val/loss", "train/acc")
    }
    bundle = build_bundle(_source(curves))
    assert set(bundle) >= {"image/png", "image/svg+xml", "text/html"}
    assert _saved_size(bundle) < 100 * 1024  # benchmarks/bench_record.py prints the figure


@pytest.mark.parametrize("n_metrics", [1_000, 10_000])
def test_thousands_of_metrics_keep_the_record_under_100_kb(n_metrics: int) -> None:
    curves = _random_walks(n_metrics, 50)
    bundle = build_bundle(_source(curves))
    assert _saved_size(bundle) < 100 * 1024
    record = parse_record(bundle[MIME_TYPE])
    metrics = record["metrics"]
    # The first panels have their curves, the next metrics their summaries, the rest a count.
    with_curves = [name for name, m in metrics.items() if "curve" in m]
    names = list(curves)
    assert with_curves == names[: len(with_curves)]
    assert 0 < len(with_curves) < len(metrics) <= 32
    assert record["metrics_omitted"] == n_metrics - len(metrics)
    summary = metrics[names[len(metrics) - 1]]
    assert summary["last"] == pytest.approx(curves[names[len(metrics) - 1]].last, rel=1e-6)
    # The chart draws its first panels and says how many metrics it leaves out.
    svg = ET.fromstring(bundle["image/svg+xml"])  # noqa: S314
    drawn = [
        t for g in svg.iter(f"{SVG}g") if g.get("class") == "legend" for t in g.iter(f"{SVG}text")
    ]
    assert 0 < len(drawn) <= len(with_curves)
    assert f"{n_metrics - len(drawn):,} more metrics are not drawn" in bundle["image/svg+xml"]
    assert "more" in bundle["text/plain"]


# ------------------------------------------------------------------ hostile records


def test_a_huge_record_is_refused_before_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    record = build_bundle(_source(_quickstart_curves()))[MIME_TYPE]
    record["metrics"]["train/loss"]["curve"]["values"] = [0.5] * 3_000_000

    def never(*_: object) -> None:
        raise AssertionError("a huge record must be refused before the schema validates it")

    monkeypatch.setattr("nbtrack.record.schema._validator", never)
    with pytest.raises(InvalidRecordError, match="refused: the record holds over"):
        parse_record(record)


def test_a_record_nested_100k_levels_deep_is_refused_with_one_line() -> None:
    nested: Any = 0
    for _ in range(100_000):
        nested = [nested]
    record = build_bundle(_source(_quickstart_curves()))[MIME_TYPE]
    record["params"] = {"deep": nested}  # type: ignore[dict-item]
    with pytest.raises(InvalidRecordError, match=f"nested over {MAX_RECORD_DEPTH} levels") as err:
        parse_record(record)
    assert "\n" not in str(err.value)


def test_bounds_never_refuse_what_nbtrack_writes() -> None:
    for n in (1, 40, 10_000):
        record = build_bundle(_source(_random_walks(n, 300)))[MIME_TYPE]
        assert parse_record(json.loads(json.dumps(record))) == record


def test_an_oversized_curve_is_refused_before_its_points_are_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nbtrack.record import schema

    record = build_bundle(_source(_quickstart_curves()))[MIME_TYPE]
    record["metrics"]["train/loss"]["curve"]["values"] = [True] * 20_000
    real = schema._validator()
    errors: list[Any] = []

    class Counting:  # the errors jsonschema was asked for
        def iter_errors(self, data: Any) -> Any:
            for error in real.iter_errors(data):
                errors.append(error)
                yield error

    monkeypatch.setattr(schema, "_validator", Counting)
    with pytest.raises(InvalidRecordError, match=r"at metrics/train/loss/curve/values: .*too long"):
        parse_record(record)
    # One error asked for: the 20,000 points were never checked one by one (was 20,000 errors).
    assert len(errors) == 1


def test_the_refusal_of_a_huge_value_is_one_short_line() -> None:
    record = build_bundle(_source(_quickstart_curves()))[MIME_TYPE]
    record["run"]["name"] = ["x" * 100] * 10_000
    with pytest.raises(InvalidRecordError, match=r"at run/name: ") as err:
        parse_record(record)
    assert len(str(err.value)) < 300
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf, -(10**400)])
def test_numbers_json_cannot_hold_are_refused_wherever_they_are(number: float) -> None:
    # nbtrack writes NaN and inf as the strings "NaN", "Infinity", "-Infinity"; Python's JSON
    # reads NaN, Infinity and 1e400 as floats, and 1 followed by 400 zeros as an int no float
    # holds: readers that format or plot them would fail.
    record = build_bundle(_source(_quickstart_curves()))[MIME_TYPE]
    record["metrics"]["train/loss"]["best"] = number
    with pytest.raises(InvalidRecordError, match="refused: the record holds a number JSON"):
        parse_record(record)


@pytest.mark.parametrize(
    ("field", "value"),
    [("start_time", 10**17), ("end_time", 10**17), ("duration_s", 10.0**20), ("start_time", -1)],
)
def test_times_no_clock_can_hold_are_not_a_valid_record(field: str, value: float) -> None:
    record = build_bundle(_source(_quickstart_curves()))[MIME_TYPE]
    record["run"][field] = value
    with pytest.raises(InvalidRecordError, match=f"at run/{field}: "):
        parse_record(record)


def test_a_record_given_as_huge_json_text_is_refused_before_it_is_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def never(*_: object, **__: object) -> None:
        raise AssertionError("JSON text far larger than a record must not be parsed")

    no_parser = type("json", (), {"loads": staticmethod(never)})
    monkeypatch.setattr("nbtrack.record.schema.json", no_parser)
    with pytest.raises(InvalidRecordError, match=r"refused: the record is 2\.9 MB of JSON text"):
        parse_record("[" + "0," * 1_500_000 + "0]")


def test_a_record_given_as_deeply_nested_json_text_is_refused_with_one_line() -> None:
    with pytest.raises(InvalidRecordError, match="nested deeper") as err:
        parse_record("[" * 100_000 + "]" * 100_000)
    assert "\n" not in str(err.value)
