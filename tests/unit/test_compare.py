"""nbtrack.runs() and nbtrack.compare() against a real SQLite store (MLflow's own client writes
it) and against the records of a saved notebook, with no store at all."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest

import nbtrack
from nbtrack._curves import Curve
from nbtrack.comparison.figure import MAX_PANELS
from nbtrack.record import RecordSource, build_bundle
from nbtrack.record.metrics import BEST_TAG

T0_MS = 1_763_779_200_000
UI = "http://127.0.0.1:5999/"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _log_run(
    client: Any,
    experiment: str,
    name: str,
    lr: str,
    *,
    offset: float = 0.0,
    tags: dict[str, str] | None = None,
) -> str:
    """A quickstart-shaped run: train/loss per batch (945 steps), val/loss per epoch (15)."""
    from mlflow.entities import Metric, Param

    run = client.create_run(experiment, run_name=name, start_time=T0_MS, tags=tags or {})
    points = [Metric("train/loss", 1 / (s + 1) + offset, T0_MS + s * 60, s) for s in range(945)]
    points += [
        Metric("val/loss", 0.5 / (e + 1) + offset, T0_MS + (e + 1) * 63 * 60, e) for e in range(15)
    ]
    params = [Param("lr", lr), Param("epochs", "15"), Param("optimizer", "adam")]
    for first in range(0, len(points), 1000):
        client.log_batch(
            run.info.run_id,
            metrics=points[first : first + 1000],
            params=params if first == 0 else [],
        )
    client.set_terminated(run.info.run_id, end_time=T0_MS + 57_000)
    return str(run.info.run_id)


@pytest.fixture
def three_runs(store: str) -> tuple[str, list[str]]:
    from mlflow import MlflowClient

    client = MlflowClient(store)
    experiment = client.create_experiment("compare-demo")
    ids = [
        _log_run(
            client,
            experiment,
            name,
            lr,
            offset=i * 0.1,
            tags={
                BEST_TAG: json.dumps({"train/loss": [0.05 + i, 900]}),
                "mlflow.source.name": "/work/notebooks/train.ipynb",
                # What nbtrack.log_dataset tags a run with: one dataset differs between runs.
                "nbtrack.datasets": f"train:spirals@{i:08x},eval:spirals-test@0000beef",
            },
        )
        for i, (name, lr) in enumerate(
            [("small-lr", "0.001"), ("mid-lr", "0.003"), ("big-lr", "0.01")]
        )
    ]
    return store, ids


# ------------------------------------------------------------------ runs() from a store


def test_runs_lists_every_run_with_params_last_and_best_values(
    three_runs: tuple[str, list[str]],
) -> None:
    store, ids = three_runs
    frame = nbtrack.runs(store=store)
    assert sorted(frame["run_id"]) == sorted(ids)
    assert list(frame.columns[:11]) == [
        "run_id",
        "name",
        "status",
        "start",
        "duration_s",
        "experiment",
        "notebook",
        "cell",
        "parent_run_id",
        "url",
        "datasets",
    ]
    row = frame.set_index("name").loc["mid-lr"]
    assert row["status"] == "FINISHED"
    assert row["duration_s"] == 57.0
    assert row["experiment"] == "compare-demo"
    assert row["params.lr"] == 0.003  # numeric: every lr reads as a number
    assert row["params.optimizer"] == "adam"
    assert row["last.train/loss"] == pytest.approx(1 / 945 + 0.1)
    assert row["best.train/loss"] == 1.05  # from the tag the kernel writes at the cell's end
    assert np.isnan(row["best.val/loss"])  # not in that tag: unknown, not guessed
    assert str(row["start"].tz) == "UTC"
    # Runs on different data are told apart by the datasets column.
    by_name = frame.set_index("name")["datasets"]
    assert by_name["mid-lr"] == "train:spirals@00000001,eval:spirals-test@0000beef"
    assert by_name["small-lr"] != by_name["mid-lr"]


def test_runs_narrows_by_experiment_and_notebook(three_runs: tuple[str, list[str]]) -> None:
    from mlflow import MlflowClient

    store, _ = three_runs
    client = MlflowClient(store)
    other = client.create_experiment("other")
    _log_run(client, other, "elsewhere", "0.1", tags={"mlflow.source.name": "/elsewhere/x.ipynb"})
    assert len(nbtrack.runs(store=store)) == 4
    assert list(nbtrack.runs("other", store=store)["name"]) == ["elsewhere"]
    assert len(nbtrack.runs(store=store, notebook="train.ipynb")) == 3
    with pytest.raises(ValueError, match="no experiment named 'missing'"):
        nbtrack.runs("missing", store=store)


def test_runs_of_a_parent_are_its_child_runs(store: str) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(store)
    experiment = client.create_experiment("sweep")
    parent = client.create_run(experiment, run_name="sweep").info.run_id
    children = [
        _log_run(client, experiment, f"trial-{i}", str(lr), tags={"mlflow.parentRunId": parent})
        for i, lr in enumerate((0.1, 0.2))
    ]
    frame = nbtrack.runs(store=store, parent=parent)
    assert sorted(frame["run_id"]) == sorted(children)
    assert set(frame["parent_run_id"]) == {parent}


def test_500_runs_take_one_search_call(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(store)
    experiment = client.create_experiment("many")
    for i in range(500):
        run_id = client.create_run(experiment, run_name=f"r{i}", start_time=T0_MS + i).info.run_id
        client.log_batch(
            run_id, metrics=[Metric("loss", 1 / (i + 1), T0_MS, 0)], params=[Param("i", str(i))]
        )
    calls: list[Any] = []
    real = MlflowClient.search_runs

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("filter_string"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "search_runs", counted)
    frame = nbtrack.runs("many", store=store)
    assert len(frame) == 500
    assert len(calls) == 1
    assert frame["name"].iloc[0] == "r499"  # newest first
    assert frame["params.i"].sum() == sum(range(500))


def test_runs_never_creates_a_store(tmp_path: Path) -> None:
    missing = tmp_path / "nothing" / "mlflow.db"
    with pytest.raises(ValueError, match="nothing was logged there yet"):
        nbtrack.runs(store=f"sqlite:///{missing}")
    assert not missing.exists()


# ------------------------------------------------------------------ compare() from a store


def test_compare_overlays_runs_with_differing_params_and_aligned_axes(
    three_runs: tuple[str, list[str]],
) -> None:
    store, _ = three_runs
    fig = nbtrack.compare(nbtrack.runs(store=store))
    table, *lines = fig.data
    # Only the params whose values differ: lr, not epochs or optimizer.
    assert table.type == "table"
    assert list(table.cells.values[0]) == ["lr"]
    assert sorted(table.header.values[1:]) == ["big-lr", "mid-lr", "small-lr"]
    # train/loss (per batch) and val/loss (per epoch) share a panel, drawn against time.
    assert {trace.name for trace in lines} == {
        f"{run} · {metric}"
        for run in ("small-lr", "mid-lr", "big-lr")
        for metric in ("train/loss", "val/loss")
    }
    assert fig.layout.xaxis.title.text == "time since start (s)"
    val = next(t for t in lines if t.name == "mid-lr · val/loss")
    assert val.x[-1] == pytest.approx(15 * 63 * 0.06)
    # Full precision on hover, 2-4 significant digits on the axes.
    assert "%{y:.10~g}" in val.hovertemplate
    assert fig.layout.yaxis.tickformat == ".3~g"
    assert fig.layout.meta["mlflow_compare_url"] is None  # no MLflow UI runs for this store


def test_compare_by_name_or_id_with_a_chosen_axis_and_metric(
    three_runs: tuple[str, list[str]],
) -> None:
    store, ids = three_runs
    fig = nbtrack.compare(["small-lr", ids[2]], metrics="val/loss", x="step", store=store)
    lines = fig.data[1:]
    assert [t.name for t in lines] == ["small-lr · val/loss", "big-lr · val/loss"]
    assert list(lines[0].x) == list(range(15))
    assert fig.layout.xaxis.title.text == "step"
    wall = nbtrack.compare(["small-lr", "big-lr"], x="wall", store=store)
    assert wall.layout.xaxis.type == "date"
    with pytest.raises(ValueError, match="no run with id or name 'nope'"):
        nbtrack.compare(["nope"], store=store)
    with pytest.raises(ValueError, match="x must be one of"):
        nbtrack.compare(["small-lr"], x="epoch", store=store)


# ------------------------------------------------------------------ records alone, no store


def _bundle(name: str, run_id: str, lr: str, scale: float) -> dict[str, Any]:
    batches, epochs = np.arange(945), np.arange(15)
    start_s = T0_MS / 1000
    train, val = Curve(), Curve()
    train.extend(batches, scale / (batches + 1), start_s + batches * 0.06)
    val.extend(epochs, scale / (epochs + 2), start_s + (epochs + 1) * 63 * 0.06)
    return build_bundle(
        RecordSource(
            run_id=run_id,
            run_name=name,
            experiment_id="3",
            experiment_name="shared",
            status="FINISHED",
            start_time_ms=T0_MS,
            end_time_ms=T0_MS + 57_000,
            tracking_uri="sqlite:////elsewhere/mlflow.db",
            ui_url=f"{UI}#/experiments/3/runs/{run_id}",
            notebook_path="shared.ipynb",
            cell_id=None,
            params={"lr": lr, "epochs": "15"},
            curves={"train/loss": train, "val/loss": val},
        )
    )


@pytest.fixture
def shared_notebook(tmp_path: Path) -> Path:
    cells = []
    for i, (name, lr) in enumerate([("a", "0.1"), ("b", "0.2")]):
        cell = nbformat.v4.new_code_cell("%%track\n...")
        bundle = _bundle(name, f"{i:032x}", lr, 1 + i)
        cell.outputs = [nbformat.v4.new_output("display_data", data=bundle)]
        cells.append(cell)
    path = tmp_path / "shared.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def test_a_shared_notebook_is_listed_and_compared_without_any_store(
    shared_notebook: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No MLflow at all: importing it fails, and nothing here needs it.
    monkeypatch.setitem(sys.modules, "mlflow", None)
    frame = nbtrack.runs(notebook=shared_notebook)
    assert sorted(frame["name"]) == ["a", "b"]
    assert set(frame["params.lr"]) == {0.1, 0.2}
    assert sorted(frame["best.train/loss"]) == pytest.approx([1 / 945, 2 / 945], rel=1e-4)
    fig = nbtrack.compare(frame)
    assert list(fig.data[0].cells.values[0]) == ["lr"]
    assert fig.layout.xaxis.title.text == "time since start (s)"
    # The records know their MLflow UI: the figure links to its comparison of both runs.
    url = fig.layout.meta["mlflow_compare_url"]
    assert url.startswith(f"{UI}#/compare-runs?runs=")
    assert f"{0:032x}" in url
    assert f"{1:032x}" in url
    assert "Compare these runs in MLflow" in fig.layout.title.text


def test_records_alone_compare_by_name(shared_notebook: Path) -> None:
    fig = nbtrack.compare(["a", "b"], notebook=shared_notebook, x="step")
    assert fig.layout.xaxis.title.text == "step"
    with pytest.raises(ValueError, match="parent= needs a tracking store"):
        nbtrack.runs(notebook=shared_notebook, parent="x")


# ------------------------------------------------------------------ records from anyone


def _write(path: Path, bundles: list[dict[str, Any]]) -> Path:
    cells = []
    for bundle in bundles:
        cell = nbformat.v4.new_code_cell("%%track\n...")
        cell.outputs = [nbformat.v4.new_output("display_data", data=bundle)]
        cells.append(cell)
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def test_markup_in_names_is_drawn_as_text(tmp_path: Path) -> None:
    # Plotly draws <a href>, <b>, <span style> in names and titles, in the notebook and in
    # fig.write_html: a record from anyone must not put a link or styling into the figure.
    metric = '<a href="https://evil.example/login">val/loss (click to re-auth)</a>'
    name = '<b style="font-size:40px">evil</b> %{x} &lt;'
    good, bad = _bundle("good", f"{0:032x}", "0.1", 1), _bundle(name, f"{1:032x}", "0.2", 2)
    for bundle in (good, bad):
        record = bundle["application/vnd.nbtrack.run+json"]
        record["metrics"][metric] = record["metrics"].pop("val/loss")
        record["panels"] = [["train/loss"], [metric]]
        record["panel_x"] = ["step", "step"]
    fig = nbtrack.compare(nbtrack.runs(notebook=_write(tmp_path / "n.ipynb", [good, bad])))
    table, *lines = fig.data
    texts = [t.name for t in lines] + [t.hovertemplate for t in lines]
    texts += [a.text for a in fig.layout.annotations] + [fig.layout.title.text]
    texts += list(table.header.values) + [c for column in table.cells.values for c in column]
    assert not [t for t in texts if "evil.example" in t and "<a " in t]
    assert not [t for t in texts if "<b " in t or "<span" in t]
    # What plotly shows is the text as written: it decodes &lt; &gt; &amp; and &#..;, not &quot;.
    shown = '&lt;a href="https://evil.example/login"&gt;val/loss (click to re-auth)&lt;/a&gt;'
    assert f"good · {shown}" in [t.name for t in lines]
    assert shown in [a.text for a in fig.layout.annotations]
    assert any(t.startswith('&lt;b style="font-size:40px"&gt;evil&lt;/b&gt; ') for t in texts)
    assert "&amp;lt;" in lines[-1].name
    # A name cannot reach into the hover template: only its own %{x} and %{y} are there.
    assert all(t.hovertemplate.count("%{") == 2 for t in lines)


def test_a_records_link_never_links_other_runs(tmp_path: Path) -> None:
    # The newer record points its UI at another site: a's id must not be sent there.
    a, b = _bundle("a", f"{0:032x}", "0.1", 1), _bundle("b", f"{1:032x}", "0.2", 2)
    b["application/vnd.nbtrack.run+json"]["run"]["start_time"] += 1000
    evil = f"https://evil.example/mlflow/#/experiments/3/runs/{1:032x}"
    b["application/vnd.nbtrack.run+json"]["ui_url"] = evil
    frame = nbtrack.runs(notebook=_write(tmp_path / "n.ipynb", [a, b]))
    assert list(frame["url"]) == [evil, f"{UI}#/experiments/3/runs/{0:032x}"]  # each its own
    fig = nbtrack.compare(frame)
    assert fig.layout.meta["mlflow_compare_url"] is None
    assert "evil.example" not in fig.layout.title.text
    # Nor may a record's link at the same UI name another run than its own.
    b["application/vnd.nbtrack.run+json"]["ui_url"] = f"{UI}#/experiments/3/runs/{0:032x}"
    fig = nbtrack.compare(nbtrack.runs(notebook=_write(tmp_path / "n.ipynb", [a, b])))
    assert fig.layout.meta["mlflow_compare_url"] is None


def test_store_runs_link_the_stores_own_ui(
    three_runs: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    store, ids = three_runs
    monkeypatch.setattr("nbtrack.ui.process.find_ui", lambda _: SimpleNamespace(url=UI))
    fig = nbtrack.compare(nbtrack.runs(store=store))
    url = fig.layout.meta["mlflow_compare_url"]
    assert url.startswith(f"{UI}#/compare-runs?runs=")
    assert all(run_id in url for run_id in ids)


def test_a_record_with_an_impossible_start_is_left_out_of_the_runs(tmp_path: Path) -> None:
    a, b = _bundle("a", f"{0:032x}", "0.1", 1), _bundle("b", f"{1:032x}", "0.2", 2)
    b["application/vnd.nbtrack.run+json"]["run"]["start_time"] = 10**17  # year 3170843
    frame = nbtrack.runs(notebook=_write(tmp_path / "n.ipynb", [a, b]))
    assert list(frame["name"]) == ["a"]


def test_a_start_no_timestamp_can_hold_is_left_empty() -> None:
    from nbtrack.comparison.table import RunRow, dataframe

    row = RunRow(run_id="f" * 32, name="x", status="FINISHED", start_ms=10**17, end_ms=None,
                 experiment_id=None, experiment=None, notebook=None, cell=None,
                 parent_run_id=None, url=None)  # fmt: skip
    frame = dataframe([row])
    assert frame["start"].isna().all()


def test_a_point_time_no_calendar_holds_is_left_off_the_wall_clock_axis(tmp_path: Path) -> None:
    a, b = _bundle("a", f"{0:032x}", "0.1", 1), _bundle("b", f"{1:032x}", "0.2", 2)
    b["application/vnd.nbtrack.run+json"]["metrics"]["val/loss"]["curve"]["times"][-1] = 1e300
    fig = nbtrack.compare(["a", "b"], notebook=_write(tmp_path / "n.ipynb", [a, b]), x="wall")
    val = next(t for t in fig.data[1:] if t.name == "b · val/loss")
    assert val.x[-1] is None
    assert val.x[0] is not None


# Found by an attacker's review (issue 10's thirteenth session).


@pytest.mark.parametrize("value", ["nan", "1_000", "١٢", "inf"])
def test_a_param_python_reads_as_a_number_pandas_does_not_still_lists_the_runs(
    tmp_path: Path, value: str
) -> None:
    # A param logged as str(float("nan")), or written 1_000: float() read it, pd.to_numeric
    # raised, and the whole table failed.
    a, b = _bundle("a", f"{0:032x}", value, 1), _bundle("b", f"{1:032x}", "0.2", 2)
    frame = nbtrack.runs(notebook=_write(tmp_path / "n.ipynb", [a, b]))
    assert sorted(frame["name"]) == ["a", "b"]
    by_name = dict(zip(frame["name"], frame["params.lr"], strict=True))
    assert by_name["b"] == 0.2
    assert str(by_name["a"]) == str(float(value))


def test_comparing_records_of_hundreds_of_panels_draws_a_bounded_number(tmp_path: Path) -> None:
    # Each panel cost plotly a scan of every subplot: 1,600 panels took 66 s, and a record can
    # hold ~7,000. What is drawn is bounded, and the figure says what was left out.
    bundles = [_bundle(name, f"{i:032x}", "0.1", i + 1) for i, name in enumerate(("a", "b"))]
    for bundle in bundles:
        record = bundle["application/vnd.nbtrack.run+json"]
        entry = record["metrics"]["val/loss"]
        for n in range(300):
            curve = {"steps": [0, 1], "values": [1.0, 0.5]}
            record["metrics"][f"m{n}"] = {**entry, "curve": curve}
        record["panels"] = [[f"m{n}"] for n in range(300)]
        record["panel_x"] = ["step"] * 300
    frame = nbtrack.runs(notebook=_write(tmp_path / "n.ipynb", bundles))
    assert len(frame) == 2
    fig = nbtrack.compare(frame)
    lines = [t for t in fig.data if t.type == "scatter"]
    assert len(lines) == 2 * MAX_PANELS
    assert "278 more panels not drawn: choose with metrics=[...]" in fig.layout.title.text
    chosen = nbtrack.compare(frame, metrics=["m299"])
    assert [t.name for t in chosen.data if t.type == "scatter"] == ["a · m299", "b · m299"]
