"""Comparing runs from the notebook: ``nbtrack.runs()`` lists them as a pandas DataFrame and
``nbtrack.compare()`` draws them as one plotly Figure.

Both read either a tracking store (one search, never one call per run) or the records a
notebook keeps, so that a notebook shared without its store can still be compared. pandas,
plotly and MLflow are imported when called, never when nbtrack is.

- ``table``: runs as rows, from a store's search or a notebook's records, and the DataFrame;
- ``curves``: the curves and panels of the runs being compared;
- ``figure``: the plotly Figure.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from nbtrack.comparison.table import (
    RunRow,
    dataframe,
    filter_clause,
    in_clause,
    rows_from_records,
    rows_from_store,
    search_store,
)

__all__ = ["compare", "runs"]

_MAX_RUNS = 1000
_SOURCE = "nbtrack"  # the DataFrame's attrs key: where its rows came from


def runs(
    experiment: str | None = None,
    *,
    notebook: str | Path | None = None,
    cell: str | None = None,
    parent: str | None = None,
    store: str | None = None,
    max_runs: int = _MAX_RUNS,
) -> Any:
    """Runs as a pandas DataFrame, one row per run, newest first.

    Columns: ``run_id``, ``name``, ``status``, ``start`` (UTC), ``duration_s``, ``experiment``,
    ``notebook``, ``cell``, ``parent_run_id``, ``url`` (the run in the MLflow UI, when one
    runs), ``datasets`` (what ``nbtrack.log_dataset`` recorded: ``context:name@digest``, comma
    separated; runs on different data differ here), then ``params.<name>`` for every param
    (numeric where every value is a number), and ``last.<metric>`` and ``best.<metric>`` for
    every metric (best by the metric's goal: lowest loss, highest accuracy; known for runs
    tracked by nbtrack).

    Where the runs come from:

    - a tracking store: ``store`` (a tracking URI), else the one this kernel logs to
      (``MLFLOW_TRACKING_URI``, else ``./mlflow.db``). ``experiment`` (name or id), ``notebook``
      (its path, or just its file name), ``cell`` (an ``nbtrack.cell`` tag) and ``parent`` (a
      run id: its child runs, e.g. a sweep's trials) narrow the search, which is one call to
      MLflow for up to 1000 runs;
    - a notebook's records, with no store at all: ``nbtrack.runs(notebook="train.ipynb")``
      (``notebook`` given, ``store`` not). ``experiment`` and ``cell`` filter them.

    Raises ``ValueError`` for an experiment, store or notebook that does not exist, and
    ``nbtrack.errors.NotebookError`` for a file that is not a readable notebook.
    """
    if notebook is not None and store is None:
        if parent is not None:
            msg = "parent= needs a tracking store: records in a notebook do not name their parent"
            raise ValueError(msg)
        rows = _rows_from_notebook(Path(notebook))
        rows = [r for r in rows if experiment in (None, r.experiment, r.experiment_id)]
        rows = [r for r in rows if cell in (None, r.cell)]
        source = {"source": "notebook", "path": str(Path(notebook).absolute())}
    else:
        uri = _store_uri(store)
        client = _client(uri)
        filters = []
        if notebook is not None:
            name = str(notebook)
            if "/" in name:
                filters.append(
                    filter_clause("tags.`mlflow.source.name`", str(Path(name).absolute()))
                )
            else:  # a bare file name: that notebook in whatever folder it ran
                filters.append(filter_clause("tags.`mlflow.source.name`", f"%/{name}", like=True))
        if cell is not None:
            filters.append(filter_clause("tags.`nbtrack.cell`", cell))
        if parent is not None:
            filters.append(filter_clause("tags.`mlflow.parentRunId`", parent))
        experiments = None if experiment is None else [_experiment_id(client, experiment)]
        found, names = search_store(
            client, experiments=experiments, filters=filters, max_runs=max_runs
        )
        rows = rows_from_store(found, names, _run_links(_ui_base(uri)))
        source = {"source": "store", "uri": uri}
    frame = dataframe(rows[:max_runs])
    frame.attrs[_SOURCE] = source
    return frame


def compare(
    runs: Any,
    metrics: str | Sequence[str] | None = None,
    x: str = "auto",
    *,
    store: str | None = None,
    notebook: str | Path | None = None,
) -> Any:
    """The runs side by side, as a ``plotly.graph_objects.Figure`` to show, style or save.

    ``runs``: a DataFrame from ``nbtrack.runs()`` (all its rows), or run ids or names (a name
    means the newest run of that name), looked up in ``notebook``'s records when given, else in
    ``store`` (default: this kernel's store). ``metrics``: the metrics to draw (default: all).
    ``x``: ``"auto"`` draws each panel against the step, or against the time since each run
    started where the panel's curves step at different rates (per batch and per epoch);
    ``"step"``, ``"relative"`` (time since start) or ``"wall"`` (clock time) force one axis.

    The Figure has a table of the params whose values differ, one chart per metric panel with
    every run's curves overlaid (a colour per run), and a link to MLflow's comparison of the
    same runs (``fig.layout.meta["mlflow_compare_url"]``): the store's own MLflow UI, or for
    runs read from a notebook the one UI where each run's own record links its page; None when
    no such UI is known.
    Works on records alone, without a store. Raises ``ValueError`` for a run that cannot be
    found or a bad ``x``.
    """
    from nbtrack.comparison.figure import X_CHOICES, build_figure

    if x not in X_CHOICES:
        msg = f"x must be one of {', '.join(map(repr, X_CHOICES))}, got {x!r}"
        raise ValueError(msg)
    wanted = [metrics] if isinstance(metrics, str) else metrics
    rows, curves, ui_base = _resolve(runs, store=store, notebook=notebook, metrics=wanted)
    from nbtrack.comparison.curves import merge_layouts

    panels = merge_layouts(curves)
    if wanted is not None:
        panels = [
            (kept, axis) for names, axis in panels if (kept := [n for n in names if n in wanted])
        ]
    return build_figure(
        curves, panels, _differing_params(rows), x=x, compare_url=_compare_url(rows, ui_base)
    )


# ------------------------------------------------------------------ where runs come from


def _rows_from_notebook(path: Path) -> list[RunRow]:
    from nbtrack.record.notebook import records_in_notebook

    return rows_from_records(records_in_notebook(path), path.absolute())


def _store_uri(store: str | None) -> str:
    from nbtrack.tracking import resolve_uri

    uri = resolve_uri(store)
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :].partition("?")[0])
        if not path.exists():
            # Opening it would create an empty database in the user's folder.
            msg = f"no tracking store at {path}: nothing was logged there yet (store={store!r})"
            raise ValueError(msg)
    return uri


def _client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _experiment_id(client: Any, experiment: str) -> str:
    found = client.get_experiment_by_name(experiment)
    if found is None and experiment.isdigit():
        from mlflow.exceptions import MlflowException

        try:
            found = client.get_experiment(experiment)
        except MlflowException:
            found = None
    if found is None:
        msg = f"no experiment named {experiment!r} (nor with that id) in this store"
        raise ValueError(msg)
    return str(found.experiment_id)


def _run_links(base: str | None) -> Any:
    """``link(experiment_id, run_id)``: the run's page in the MLflow UI at ``base``, or None."""
    from nbtrack.ui.registry import TRAINING_VIEW

    def link(experiment_id: str, run_id: str) -> str | None:
        if base is None:
            return None
        experiment, run = quote(experiment_id, safe=""), quote(run_id, safe="")
        return f"{base}#/experiments/{experiment}/runs/{run}?{TRAINING_VIEW}"

    return link


def _ui_base(uri: str) -> str | None:
    """The root of the store's own MLflow UI: an MLflow server's, or the one ``%track_ui``
    started for it (as ``nbtrack.ui.links`` finds it); None when none is known."""
    from nbtrack._redact import safe_link

    if uri.startswith(("http://", "https://")):
        return safe_link(uri.split("?", 1)[0].rstrip("/") + "/")
    from nbtrack.ui.process import find_ui

    ui = find_ui(uri)  # one look, not one per run
    return None if ui is None else safe_link(ui.url)


def _records_ui(rows: Sequence[RunRow]) -> str | None:
    """The MLflow UI where every record places its own run, when they all agree.

    A record comes from anyone and links where it likes: its ``ui_url`` may link that run (the
    row's ``url``), never vouch for another, so a link to several runs needs each run's own
    record to put it in that one UI.
    """
    bases = {_ui_of_run(row.url, row.run_id) for row in rows}
    return bases.pop() if len(bases) == 1 else None


def _ui_of_run(url: str | None, run_id: str | None) -> str | None:
    """The UI root of ``url`` when it is run ``run_id``'s page there
    (``<root>#/experiments/<id>/runs/<run_id>``), else None."""
    from nbtrack._redact import safe_link

    if not (url and run_id and safe_link(url) == url):
        return None
    parts = urlsplit(url)
    route = parts.fragment.split("?", 1)[0].split("/")
    if len(route) != 5 or route[:2] != ["", "experiments"] or route[3:] != ["runs", run_id]:
        return None
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _resolve(
    given: Any, *, store: str | None, notebook: str | Path | None, metrics: Sequence[str] | None
) -> tuple[list[RunRow], list[Any], str | None]:
    """The rows and curves of the runs ``given``, and the MLflow UI that shows them all."""
    from nbtrack.comparison.curves import curves_from_record, curves_from_store

    source, wanted = _wanted(given, store=store, notebook=notebook)
    if source["source"] == "notebook":
        available = _rows_from_notebook(Path(source["path"]))
        rows = [_pick(available, key) for key in wanted]
        labels = _labels(rows)
        curves = [
            curves_from_record(row.record or {}, label)
            for row, label in zip(rows, labels, strict=True)
        ]
        return rows, curves, _records_ui(rows)
    uri = source["uri"]
    client = _client(uri)
    ids = [k for k in wanted if _looks_like_id(k)]
    names = [k for k in wanted if not _looks_like_id(k)]
    # MLflow's filters take a list for run ids only: names are searched one by one (a
    # comparison names a handful of runs).
    clauses = [in_clause("attributes.run_id", ids)] if ids else []
    clauses += [filter_clause("attributes.run_name", name) for name in names]
    found: list[Any] = []
    for clause in clauses:
        found += search_store(client, experiments=None, filters=[clause], max_runs=_MAX_RUNS)[0]
    experiment_names = {r.info.experiment_id: "" for r in found}
    base = _ui_base(uri)
    available = rows_from_store(found, experiment_names, _run_links(base))
    by_id = {run.info.run_id: run for run in found}
    rows = [_pick(available, key) for key in wanted]
    labels = _labels(rows)
    curves = [
        curves_from_store(client, by_id[row.run_id], label, metrics)
        for row, label in zip(rows, labels, strict=True)
    ]
    return rows, curves, base


def _wanted(
    given: Any, *, store: str | None, notebook: str | Path | None
) -> tuple[dict[str, str], list[str]]:
    """Where to look, and the run ids or names to look for."""
    if hasattr(given, "columns") and "run_id" in getattr(given, "columns", ()):
        source = dict(given.attrs.get(_SOURCE) or {})
        keys = [
            str(run_id) if isinstance(run_id, str) and run_id else str(name)
            for run_id, name in zip(given["run_id"], given["name"], strict=True)
        ]
        if not source:  # attrs lost along the way: the caller's, else this kernel's store
            source = _source_of(store, notebook)
        return source, keys
    if isinstance(given, str):
        given = [given]
    keys = [str(k) for k in given]
    if not keys:
        msg = "compare() needs at least one run: a DataFrame from nbtrack.runs(), ids or names"
        raise ValueError(msg)
    return _source_of(store, notebook), keys


def _source_of(store: str | None, notebook: str | Path | None) -> dict[str, str]:
    if notebook is not None and store is None:
        return {"source": "notebook", "path": str(Path(notebook).absolute())}
    return {"source": "store", "uri": _store_uri(store)}


def _looks_like_id(key: str) -> bool:
    return len(key) == 32 and all(c in "0123456789abcdef" for c in key)


def _pick(rows: Sequence[RunRow], key: str) -> RunRow:
    for row in rows:  # newest first: a name means its newest run
        if key in (row.run_id, row.name):
            return row
    known = ", ".join(sorted({r.name for r in rows})[:10]) or "none"
    msg = f"no run with id or name {key!r} here (runs found: {known})"
    raise ValueError(msg)


def _labels(rows: Sequence[RunRow]) -> list[str]:
    names = [r.name for r in rows]
    return [
        f"{name} ({(row.run_id or str(i))[:6]})" if names.count(name) > 1 else name
        for i, (name, row) in enumerate(zip(names, rows, strict=True))
    ]


def _differing_params(rows: Sequence[RunRow]) -> list[tuple[str, list[str | None]]]:
    names = sorted({name for row in rows for name in row.params})
    table = []
    for name in names:
        values = [row.params.get(name) for row in rows]
        if len(set(values)) > 1:
            table.append((name, values))
    return table


def _compare_url(rows: Sequence[RunRow], ui_base: str | None) -> str | None:
    """MLflow's comparison page of these runs in the UI at ``ui_base``, when one is known."""
    from nbtrack.ui.registry import TRAINING_VIEW

    ids = list(dict.fromkeys(r.run_id for r in rows if r.run_id))
    if ui_base is None or len(ids) < 2:
        return None
    experiments = list(dict.fromkeys(r.experiment_id for r in rows if r.experiment_id))
    query = (
        f"runs={quote(json.dumps(ids))}&experiments={quote(json.dumps(experiments))}"
        f"&{TRAINING_VIEW}"
    )
    return f"{ui_base}#/compare-runs?{query}"
