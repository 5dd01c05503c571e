"""The record bundle: valid, bounded in size, free of secrets, safe to render, honest on failure."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any

import nbformat
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbtrack._curves import Curve
from nbtrack._model import RunFailure
from nbtrack.record import (
    MIME_TYPE,
    InvalidRecordError,
    RecordSource,
    build_bundle,
    group_metrics,
    metric_goal,
    parse_record,
    render_chart,
    render_html,
)
from nbtrack.record.format import fmt_duration, fmt_time
from nbtrack.record.schema import record_panels

SVG = "{http://www.w3.org/2000/svg}"
# The start of the run _source() describes, in unix seconds.
_START_S = 1_763_779_200.0


def _curve(values: Any, steps: Any = None) -> Curve:
    values = np.asarray(values, dtype=np.float64)
    steps = np.arange(len(values)) if steps is None else np.asarray(steps)
    curve = Curve()
    # Several batches, as the sender delivers them.
    for start in range(0, len(values), 4096):
        curve.extend(steps[start : start + 4096].tolist(), values[start : start + 4096].tolist())
    return curve


def _source(**changes: Any) -> RecordSource:
    steps = np.arange(200)
    base = RecordSource(
        run_id="5f3c1a2b9d8e4f70a1b2c3d4e5f60718",
        run_name="baseline",
        experiment_id="1",
        experiment_name="mnist",
        status="FINISHED",
        start_time_ms=1_763_779_200_000,
        end_time_ms=1_763_779_262_500,
        tracking_uri="sqlite:////work/mlflow.db",
        ui_url="http://127.0.0.1:5000/#/experiments/1/runs/5f3c1a2b9d8e4f70a1b2c3d4e5f60718",
        notebook_path="train.ipynb",
        cell_id="a1b2c3",
        params={"lr": "0.003", "epochs": "5"},
        curves={
            "train/loss": _curve(2.3 * np.exp(-steps / 50) + 0.1),
            "val/loss": _curve([1.9, 0.8, 0.5, 0.4], steps=[49, 99, 149, 199]),
            "val/acc": _curve([0.5, 0.8, 0.9, 0.88], steps=[49, 99, 149, 199]),
        },
    )
    return dataclasses.replace(base, **changes)


def _record(bundle: dict[str, Any]) -> dict[str, Any]:
    record = bundle[MIME_TYPE]
    assert isinstance(record, dict)
    return record


def _svg_panels(svg: str) -> list[list[str | None]]:
    """The panels an SVG chart draws, as the legend labels of each, top left to bottom right."""
    root = ET.fromstring(svg)  # noqa: S314 (our own output, parsed to prove it is well-formed)
    return [
        [
            text.text
            for legend in panel.iter(f"{SVG}g")
            if legend.get("class") == "legend"
            for text in legend.iter(f"{SVG}text")
        ]
        for panel in root.iter(f"{SVG}g")
        if panel.get("class") == "panel"
    ]


def test_bundle_holds_the_record_and_four_fallbacks() -> None:
    bundle = build_bundle(_source())

    assert set(bundle) == {MIME_TYPE, "text/html", "image/svg+xml", "image/png", "text/plain"}
    record = parse_record(bundle[MIME_TYPE])
    assert record["schema"] == 3
    assert record["panels"] == [["train/loss", "val/loss"], ["val/acc"]]
    assert record["panel_x"] == ["step", "step"]
    assert record["metrics_omitted"] == 0
    assert record["run"]["status"] == "FINISHED"
    assert record["run"]["duration_s"] == 62.5
    assert record["params"] == {"lr": "0.003", "epochs": "5"}
    loss = record["metrics"]["train/loss"]
    assert loss["goal"] == "min"
    assert loss["count"] == 200
    assert loss["last_step"] == 199
    assert loss["best"] == loss["min"]
    assert record["metrics"]["val/acc"]["best"] == 0.9
    assert record["metrics"]["val/acc"]["best_step"] == 149
    assert record["metrics"]["val/acc"]["last"] == 0.88
    # The bundle is what a kernel sends: strict JSON, no NaN tokens.
    json.dumps(bundle, allow_nan=False)


def test_text_summary_names_status_duration_and_values() -> None:
    text = build_bundle(_source())["text/plain"]

    assert text.splitlines()[0] == (
        "nbtrack run 'baseline': FINISHED in 1 min 02 s  (experiment mnist, run 5f3c1a2b)"
    )
    assert "val/acc" in text
    assert "best 0.9 @ 149" in text


def test_long_run_adds_well_under_100_kb_to_the_saved_notebook() -> None:
    rng = np.random.default_rng(0)
    n = 100_000
    curves = {
        # Random walks: the worst case for decimation, every bucket has distinct extremes.
        name: _curve(rng.standard_normal(n).cumsum())
        for name in ("train/loss", "val/loss", "train/acc")
    }
    bundle = build_bundle(_source(curves=curves))
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("train()")])
    empty = len(nbformat.writes(notebook).encode())
    notebook.cells[0].outputs = [nbformat.v4.new_output("display_data", data=bundle)]
    added = len(nbformat.writes(notebook).encode()) - empty

    assert added < 70 * 1024  # benchmarks/ prints the figure
    record = _record(bundle)
    for metric in record["metrics"].values():
        assert len(metric["curve"]["steps"]) == len(metric["curve"]["values"]) <= 300
    # Decimation kept each curve's extremes even though it dropped 99.7 % of the points.
    for name, metric in record["metrics"].items():
        _, values = curves[name].points()
        assert min(metric["curve"]["values"]) == pytest.approx(values.min(), rel=1e-4)
        assert max(metric["curve"]["values"]) == pytest.approx(values.max(), rel=1e-4)


def test_many_metrics_share_a_bounded_point_budget() -> None:
    curves = {f"layer{i}/grad_norm": _curve(np.arange(5000.0) % 97) for i in range(20)}
    record = _record(build_bundle(_source(curves=curves)))
    assert all("curve" in m for m in record["metrics"].values())
    assert sum(len(m["curve"]["steps"]) for m in record["metrics"].values()) <= 20 * 20


SECRETS = ("hunter2", "s3cr3t-token-value", "sk-abcdefghijklmnopqrstuvwx", "swordfish")


def test_no_secret_and_no_credential_reaches_any_rendering() -> None:
    bundle = build_bundle(
        _source(
            params={
                "lr": "0.1",
                "api_key": "sk-abcdefghijklmnopqrstuvwx",
                "db_password": "swordfish",
                "data_url": "postgresql://alice:hunter2@db.example/train",
            },
            tracking_uri="https://alice:hunter2@mlflow.example:5000/?token=s3cr3t-token-value&x=1",
            ui_url="https://alice:hunter2@mlflow.example:5000/#/experiments/1/runs/abc",
            status="FAILED",
            error=RunFailure(
                "ConnectionError", "cannot reach https://bob:hunter2@mlflow.example/api", step=3
            ),
        )
    )
    everything = json.dumps(bundle)
    for secret in SECRETS:
        assert secret not in everything
    assert "alice" not in everything
    assert "api_key" not in everything
    assert "db_password" not in everything
    record = _record(bundle)
    assert record["tracking_uri"] == "https://mlflow.example:5000/?x=1"
    assert record["ui_url"] == "https://mlflow.example:5000/#/experiments/1/runs/abc"
    assert record["params"]["data_url"] == "postgresql://db.example/train"
    assert record["error"]["message"] == "cannot reach https://mlflow.example/api"


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "file:///etc/passwd", "//evil", "", "http://[::1"]
)
def test_only_http_links_are_kept(url: str) -> None:
    bundle = build_bundle(_source(ui_url=url))
    assert _record(bundle)["ui_url"] is None
    assert "<a " not in bundle["text/html"]


def test_failed_run_shows_status_and_where_it_stopped() -> None:
    bundle = build_bundle(
        _source(
            status="FAILED", error=RunFailure("ValueError", "loss is nan\nmore detail", step=12)
        )
    )
    record = _record(bundle)
    assert record["run"]["status"] == "FAILED"
    assert record["error"] == {"type": "ValueError", "message": "loss is nan\nmore detail",
                               "step": 12}  # fmt: skip
    stopped = "stopped at step 12: ValueError: loss is nan"
    assert stopped in bundle["text/plain"]
    assert stopped in bundle["text/html"]
    assert "FAILED after 1 min 02 s" in bundle["text/plain"]


def test_the_failures_traceback_stays_out_of_the_record() -> None:
    # The run's failure carries the traceback for MLflow; the notebook gets type, message, step.
    failure = RunFailure("ValueError", "bad batch", 'File "train.py", line 3\n  secret()', step=5)
    bundle = build_bundle(_source(status="FAILED", error=failure))
    assert _record(bundle)["error"] == {"type": "ValueError", "message": "bad batch", "step": 5}
    assert "train.py" not in json.dumps(bundle)


def test_interrupted_run_without_error_stops_at_its_last_step() -> None:
    bundle = build_bundle(_source(status="KILLED"))
    assert "KILLED after" in bundle["text/plain"]
    assert "stopped at step 199" in bundle["text/plain"]
    assert "KILLED" in bundle["text/html"]


def test_running_run_has_no_end_and_still_validates() -> None:
    bundle = build_bundle(
        _source(status="RUNNING", end_time_ms=None, sync_state="offline", pending_points=42)
    )
    record = parse_record(_record(bundle))
    assert record["run"]["end_time"] is None
    assert record["run"]["duration_s"] is None
    assert record["sync"] == {"state": "offline", "pending_points": 42}
    assert "RUNNING since 2025-11-22 02:40 UTC" in bundle["text/plain"]
    assert "42 points" in bundle["text/plain"]


def test_last_is_the_value_at_the_highest_step_as_in_mlflow() -> None:
    # Steps logged out of order (an evaluation redone for an earlier epoch) made the record's
    # "last" the point logged last, while MLflow's run page and nbtrack.runs() for runs without
    # a record show MLflow's latest value: the one at the highest step, the later of equal ones.
    curve = Curve()
    curve.extend([0, 3, 1], [1.0, 0.5, 0.25])
    assert (curve.last, curve.last_step) == (0.5, 3)
    curve.extend([2], [0.1])
    assert (curve.last, curve.last_step) == (0.5, 3)
    curve.extend([3, 2], [0.4, 0.3])
    assert (curve.last, curve.last_step) == (0.4, 3)
    record = parse_record(_record(build_bundle(_source(curves={"loss": curve}))))
    assert (record["metrics"]["loss"]["last"], record["metrics"]["loss"]["last_step"]) == (0.4, 3)


def test_a_curve_is_drawn_in_step_order_as_mlflow_draws_it() -> None:
    # An evaluation redone for earlier epochs (steps 3 and 1 logged after 0-4) was drawn in the
    # order logged: the line ran back to step 1 and forward again, where MLflow's charts and
    # nbtrack.compare reading the store draw each curve in step order, equal steps in the order
    # they were logged. Each point keeps its own time.
    curve = Curve()
    curve.extend([0, 1, 2, 3, 4], [1.0, 0.8, 0.6, 0.4, 0.2], [_START_S + t for t in range(5)])
    curve.extend([3, 1], [0.45, 0.85], [_START_S + 5, _START_S + 6])
    record = parse_record(_record(build_bundle(_source(curves={"loss": curve}))))
    drawn = record["metrics"]["loss"]["curve"]
    assert drawn["steps"] == [0, 1, 1, 2, 3, 3, 4]
    assert drawn["values"] == [1.0, 0.8, 0.85, 0.6, 0.4, 0.45, 0.2]
    assert drawn["times"] == [0, 1, 6, 2, 3, 5, 4]
    # Decimated, the kept points are still in step order.
    rng = np.random.default_rng(0)
    long = Curve()
    long.extend(rng.permutation(20_000).tolist(), rng.random(20_000).tolist())
    shuffled = parse_record(_record(build_bundle(_source(curves={"loss": long}))))
    steps = shuffled["metrics"]["loss"]["curve"]["steps"]
    assert 0 < len(steps) < 20_000
    assert steps == sorted(steps)


def test_non_finite_values_are_kept_as_strings_and_marked() -> None:
    values = np.linspace(2.0, 0.5, 100)
    values[60:] = np.nan
    values[80] = np.inf
    bundle = build_bundle(
        _source(curves={"loss": _curve(values), "broken": _curve([np.nan, -np.inf])})
    )
    record = parse_record(_record(bundle))
    json.dumps(record, allow_nan=False)
    loss = record["metrics"]["loss"]
    assert loss["last"] == "NaN"
    assert loss["nonfinite"] == 40
    assert "NaN" in loss["curve"]["values"]
    assert "Infinity" in loss["curve"]["values"]
    assert loss["best"] == 1.106061  # the last finite point, step 59
    broken = record["metrics"]["broken"]
    assert broken["min"] is None
    assert broken["max"] is None
    assert broken["best"] is None
    assert broken["curve"]["values"] == ["NaN", "-Infinity"]
    # The chart marks them: red-edged triangles, and the legend counts them.
    svg = bundle["image/svg+xml"]
    assert svg.count("stroke='#cf222e'") >= 2
    assert "loss (40 NaN/inf)" in svg


def test_svg_chart_is_well_formed_with_a_panel_per_metric_family() -> None:
    svg = build_bundle(_source())["image/svg+xml"]
    root = ET.fromstring(svg)  # noqa: S314 (our own output, parsed to prove it is well-formed)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert {"train/loss", "val/loss", "val/acc"} <= set(texts)
    frames = [r for r in root.iter(f"{ns}rect") if r.get("fill") == "none"]
    assert len(frames) == 2  # losses together, accuracy apart
    assert _svg_panels(svg) == [["train/loss", "val/loss"], ["val/acc"]]
    curves = [p for p in root.iter(f"{ns}path") if p.get("stroke-width") == "1.4"]
    assert len(curves) == 3


def test_the_chart_and_the_lab_extension_get_the_same_panels() -> None:
    # `valLoss` and `trainLoss` once shared a panel in the SVG but not in JupyterLab, which
    # grouped names its own way. Now the record carries the panels and every reader draws them.
    steps = np.arange(50)
    bundle = build_bundle(
        _source(
            curves={
                "valLoss": _curve(1.0 / (steps + 1) + 0.2),
                "trainLoss": _curve(1.0 / (steps + 1)),
                "lr": _curve(np.full(50, 3e-3)),
            }
        )
    )
    # What the extension reads: the record as a saved notebook holds it. nbformat sorts the
    # keys of JSON outputs, so the order of the panels list is the only order that survives.
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("train()")])
    notebook.cells[0].outputs = [nbformat.v4.new_output("display_data", data=bundle)]
    saved = nbformat.reads(nbformat.writes(notebook), as_version=4)
    record = parse_record(saved.cells[0].outputs[0].data[MIME_TYPE])
    assert list(record["metrics"]) == ["lr", "trainLoss", "valLoss"]
    assert record["panels"] == [["valLoss", "trainLoss"], ["lr"]]
    assert _svg_panels(bundle["image/svg+xml"]) == record["panels"]
    assert _svg_panels(render_chart(record) or "") == record["panels"]


def test_the_record_splits_a_panel_where_scales_differ() -> None:
    bundle = build_bundle(
        _source(
            curves={
                "train/loss": _curve([2.0, 1.0, 0.5]),
                "val/loss": _curve([1.9, 1.2, 0.6]),
                "aux/loss": _curve([5000.0, 3000.0, 2000.0]),
            }
        )
    )
    panels = [["train/loss", "val/loss"], ["aux/loss"]]
    assert _record(bundle)["panels"] == panels
    assert _svg_panels(bundle["image/svg+xml"]) == panels


def test_a_schema_1_record_is_still_read_with_one_panel_per_metric() -> None:
    record = _record(build_bundle(_source()))
    del record["panels"]
    record["schema"] = 1
    assert parse_record(record) == record
    assert record_panels(record) == [["train/loss"], ["val/loss"], ["val/acc"]]
    assert _svg_panels(render_chart(record) or "") == [["train/loss"], ["val/loss"], ["val/acc"]]


def test_a_schema_2_record_needs_its_panels() -> None:
    record = _record(build_bundle(_source()))
    del record["panels"]
    with pytest.raises(InvalidRecordError, match="'panels' is a required property"):
        parse_record(record)


def test_panels_naming_unknown_or_repeated_metrics_still_draw_every_metric_once() -> None:
    record = _record(build_bundle(_source()))
    record["panels"] = [["ghost", "val/acc"], ["val/acc", "train/loss"], ["ghost"]]
    parse_record(record)  # well-formed: readers cope with what the schema cannot say
    assert record_panels(record) == [["val/acc"], ["train/loss"], ["val/loss"]]
    assert _svg_panels(render_chart(record) or "") == [["val/acc"], ["train/loss"], ["val/loss"]]


def test_text_from_the_run_is_escaped_everywhere() -> None:
    evil = "<script>alert(1)</script>"
    bundle = build_bundle(
        _source(
            run_name=evil,
            experiment_name=evil,
            params={"note": '"><img src=x onerror=alert(1)>'},
            curves={"<b>loss</b>": _curve([1.0, 0.5])},
            status="FAILED",
            error=RunFailure(evil, evil),
        )
    )
    for mime in ("text/html", "image/svg+xml"):
        assert "<script" not in bundle[mime]
        assert "<b>" not in bundle[mime]
        assert "<img src=x" not in bundle[mime]
    ET.fromstring(bundle["image/svg+xml"])  # noqa: S314 (our own output)


# Tags, attributes and CSS properties that JupyterLab's HTML sanitizer keeps in untrusted output
# (packages/apputils/src/sanitizer.ts): what the record may use so that it renders the same in
# an untrusted notebook as in nbconvert's HTML.
_ALLOWED_TAGS = {
    "div": set(), "span": set(), "strong": set(), "a": {"href", "target"},
    "img": {"src", "width", "height", "alt"}, "table": set(), "thead": set(),
    "tbody": set(), "tr": set(), "th": set(), "td": {"colspan"},
}  # fmt: skip
_ALLOWED_CSS = {
    "font-family", "font-size", "font-weight", "line-height", "color", "background",
    "border", "border-radius", "border-bottom", "border-collapse", "padding", "margin",
    "margin-top",
    "max-width", "text-align", "display", "width", "height", "vertical-align", "word-break",
    "white-space",
}  # fmt: skip


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _ALLOWED_TAGS:
            self.problems.append(f"tag <{tag}>")
            return
        for name, value in attrs:
            if name == "style":
                for declaration in filter(None, (value or "").split(";")):
                    prop = declaration.split(":", 1)[0].strip()
                    if prop not in _ALLOWED_CSS:
                        self.problems.append(f"css {prop} on <{tag}>")
            elif name not in _ALLOWED_TAGS[tag]:
                self.problems.append(f"attribute {name} on <{tag}>")
        if tag == "img":
            self.images.append(dict(attrs)["src"] or "")


@pytest.mark.parametrize("status", ["FINISHED", "FAILED", "RUNNING"])
def test_html_uses_only_markup_that_jupyterlab_keeps(status: str) -> None:
    end = None if status == "RUNNING" else 1_763_779_262_500
    bundle = build_bundle(_source(status=status, end_time_ms=end, sync_state="syncing"))
    parser = _Markup()
    parser.feed(bundle["text/html"])
    assert parser.problems == []
    # The chart travels as an image, the PNG inline in a data: URI: no request, no <svg>.
    assert len(parser.images) == 1
    assert parser.images[0] == "data:image/png;base64," + bundle["image/png"]
    assert not re.search(r"(?i)(https?:)?//[^\"' ]*\.(js|css)\b", bundle["text/html"])


def test_html_without_metrics_has_no_chart() -> None:
    bundle = build_bundle(_source(curves={}))
    assert "image/svg+xml" not in bundle
    assert "image/png" not in bundle
    assert "no metrics logged" in bundle["text/html"]
    parse_record(_record(bundle))


def test_secret_named_params_are_dropped_even_if_the_caller_passed_them() -> None:
    record = _record(build_bundle(_source(params={"hf_token": "x", "tokenizer": "bpe"})))
    assert record["params"] == {"tokenizer": "bpe"}


def test_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="status must be one of"):
        _source(status="DONE")


@pytest.mark.parametrize(
    ("name", "goal"),
    [
        ("train/loss", "min"),
        ("val_loss", "min"),
        ("valLoss", "min"),
        ("test/error_rate", "min"),
        ("mse", "min"),
        ("perplexity", "min"),
        ("val/acc", "max"),
        ("top1_accuracy", "max"),
        ("f1_macro", "max"),
        ("roc_auc", "max"),
        ("precision", "max"),
        ("recall@10", "max"),
        ("eval/score", "max"),
        ("lr", None),
        ("epoch", None),
        ("grad_norm", None),
        ("tokenizer_vocab", None),
    ],
)
def test_goal_is_guessed_from_the_metric_name(name: str, goal: str | None) -> None:
    assert metric_goal(name) == goal


def test_train_and_validation_variants_share_a_panel() -> None:
    names = ["train/loss", "lr", "val/loss", "train_acc", "val_acc", "test/loss"]
    assert group_metrics(names) == [
        ["train/loss", "val/loss", "test/loss"],
        ["lr"],
        ["train_acc", "val_acc"],
    ]


def test_metrics_of_very_different_scale_get_separate_panels() -> None:
    ranges = {"train/loss": (0.1, 2.3), "val/loss": (0.2, 2.0), "test/loss": (300.0, 9000.0)}
    assert group_metrics(ranges, ranges) == [["train/loss", "val/loss"], ["test/loss"]]


def test_a_panel_holds_at_most_six_curves() -> None:
    names = [f"{split}/loss" for split in ("train", "val", "test", "eval", "dev", "holdout")]
    names += ["training/loss"]
    assert [len(p) for p in group_metrics(names)] == [6, 1]


def test_parse_record_accepts_json_text_and_round_trips() -> None:
    record = _record(build_bundle(_source()))
    assert parse_record(json.dumps(record)) == record


def test_parse_record_refuses_a_newer_schema_and_says_to_upgrade() -> None:
    record = dict(_record(build_bundle(_source())), schema=4)
    with pytest.raises(InvalidRecordError, match=r"schema version 4.*upgrade nbtrack"):
        parse_record(record)


def test_parse_record_says_where_a_record_is_wrong() -> None:
    record = _record(build_bundle(_source()))
    record["metrics"]["val/acc"]["count"] = "many"
    with pytest.raises(InvalidRecordError, match=r"at metrics/val/acc/count: 'many'"):
        parse_record(record)


@pytest.mark.parametrize(("data", "message"), [("{not json", "must be JSON"), ([1], "JSON object")])
def test_parse_record_refuses_what_is_not_a_record(data: object, message: str) -> None:
    with pytest.raises(InvalidRecordError, match=message):
        parse_record(data)


_ANY_VALUE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-10.0, 10.0),
    st.sampled_from([0.0, 1e-300, -1e300, 1e300, 5e-324]),
)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=30),
        st.lists(st.tuples(st.integers(0, 10**12), _ANY_VALUE), max_size=60),
        max_size=5,
    )
)
def test_any_curves_give_a_valid_record_and_well_formed_chart(
    points: dict[str, list[tuple[int, float]]],
) -> None:
    curves = {}
    for name, pairs in points.items():
        pairs.sort(key=lambda p: p[0])
        curves[name] = _curve([v for _, v in pairs], [s for s, _ in pairs])
    bundle = build_bundle(_source(curves=curves))
    json.dumps(bundle, allow_nan=False)
    parse_record(_record(bundle))
    if curves:
        ET.fromstring(bundle["image/svg+xml"])  # noqa: S314 (our own output)


def test_text_summary_carries_no_terminal_escape_sequences() -> None:
    name = "\x1b[2J\x1b]0;title\x07run\rover"
    text = build_bundle(_source(run_name=name, curves={"lo\x1bss": _curve([1.0])}))["text/plain"]
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f]", text)
    assert "lo?ss" in text


def test_error_may_be_given_as_a_mapping() -> None:
    source = _source(status="FAILED", error={"type": "OSError", "message": "disk full", "step": 7})
    assert source.error == RunFailure("OSError", "disk full", step=7)
    assert "stopped at step 7: OSError: disk full" in build_bundle(source)["text/plain"]
    with pytest.raises(ValueError, match="error needs the keys type and message"):
        _source(error={"kind": "OSError"})


def test_the_json_schema_and_the_model_list_the_same_statuses() -> None:
    import json
    from pathlib import Path

    import nbtrack.record
    from nbtrack._model import SYNC_STATES, Status

    schema_file = Path(nbtrack.record.__file__).with_name("record_schema.json")
    text = json.loads(schema_file.read_text(encoding="utf-8"))
    run_status = text["properties"]["run"]["properties"]["status"]["enum"]
    sync_state = text["properties"]["sync"]["properties"]["state"]["enum"]
    assert sorted(run_status) == sorted(status.value for status in Status)
    assert sorted(sync_state) == sorted(SYNC_STATES)


@pytest.mark.parametrize("seconds", [math.nan, math.inf, -math.inf, -1.0, 1e300])
def test_any_duration_a_record_holds_formats_without_raising(seconds: float) -> None:
    assert fmt_duration(seconds)


@pytest.mark.parametrize("epoch_ms", [10**20, -(10**20), 2**70])
def test_a_time_no_calendar_holds_formats_as_unknown(epoch_ms: int) -> None:
    assert fmt_time(epoch_ms) == "?"


# Found by an attacker's review (issue 10's thirteenth session): records that passed
# parse_record and then broke a reader.


@pytest.mark.parametrize(
    ("curve", "message"),
    [
        ({"steps": [0, 1, 2, 3], "values": [1.0]}, "4 steps and 1 values"),
        ({"steps": [0, 1, 2], "values": [1, 2, 3], "times": [0.0]}, "3 steps and 1 times"),
    ],
)
def test_a_curve_whose_columns_differ_in_length_is_refused(
    curve: dict[str, Any], message: str
) -> None:
    record = _record(build_bundle(_source()))
    record["metrics"]["train/loss"]["curve"] = curve
    with pytest.raises(InvalidRecordError, match=f"metrics/train/loss/curve: {message}"):
        parse_record(record)


def test_a_sweep_trials_curve_with_times_of_any_kind_is_read() -> None:
    record = _record(build_bundle(_source()))
    curve = {"steps": [0, 1], "values": [1.0, 0.5], "times": 5}
    trial = {"number": 0, "name": "t", "run_id": None, "state": "COMPLETE", "value": 1.0,
             "params": {}, "curve": curve}  # fmt: skip
    record["sweep"] = {"study": "s", "sampler": "tpe", "metric": "m", "goal": "min",
                       "objective": "last", "best": 0, "trials": [trial]}  # fmt: skip
    parse_record(record)  # the schema says nothing of a trial's times: no TypeError either


def test_steps_a_float_can_barely_tell_apart_are_drawn() -> None:
    record = _record(build_bundle(_source()))
    for entry in record["metrics"].values():
        entry["curve"] = {"steps": [0.0, 5e-324], "values": [1.0, 2.0]}
    assert render_chart(parse_record(record)) is not None


def test_every_rendering_draws_what_the_schema_allows() -> None:
    record = _record(build_bundle(_source()))
    record["metrics"]["train/loss"]["count"] = None  # as the server API writes it
    record["metrics"]["train/loss"]["curve"] = {"steps": [-1e308, 1e308], "values": [1.0, 2.0]}
    parse_record(record)
    svg = render_chart(record)
    assert svg is not None
    ET.fromstring(svg)  # noqa: S314 (our own output)
    html = render_html(record, svg=svg)
    assert "train/loss" in html
