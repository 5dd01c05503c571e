"""Runs as rows: from one search of a tracking store, or from the records in a notebook.

Both sources give the same row shape (``RunRow``), so that ``nbtrack.runs()`` returns the same
columns whether it read MLflow or a notebook someone shared without its store.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbtrack._redact import is_secret_name
from nbtrack.integrations.datasets import DATASETS_TAG
from nbtrack.record.format import from_json_number
from nbtrack.record.metrics import BEST_TAG
from nbtrack.tracking import active_experiments

__all__ = [
    "RunRow",
    "dataframe",
    "filter_clause",
    "in_clause",
    "rows_from_records",
    "rows_from_store",
    "search_store",
]

_SOURCE_TAG = "mlflow.source.name"
_PARENT_TAG = "mlflow.parentRunId"
_CELL_TAG = "nbtrack.cell"
# MLflow's REST API takes at most 100 experiment ids per search, and pages of at most 50,000
# runs (SQL stores); 1000 a page keeps each answer small.
_EXPERIMENTS_PER_SEARCH = 100
_PAGE = 1000


@dataclass
class RunRow:
    """One run as ``nbtrack.runs()`` lists it. Times are Unix milliseconds."""

    run_id: str | None
    name: str
    status: str
    start_ms: int | None
    end_ms: int | None
    experiment_id: str | None
    experiment: str | None
    notebook: str | None
    cell: str | None
    parent_run_id: str | None
    url: str | None
    params: dict[str, str] = field(default_factory=dict)
    # What the run trained and evaluated on (nbtrack.log_dataset's tag: context:name@digest,...).
    datasets: str | None = None
    last: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)
    # The record, when the row came from a notebook: compare() draws its curves.
    record: Mapping[str, Any] | None = None


# ------------------------------------------------------------------ a tracking store


def search_store(
    client: Any,
    *,
    experiments: Sequence[str] | None,
    filters: Sequence[str],
    max_runs: int,
) -> tuple[list[Any], dict[str, str]]:
    """Runs of ``experiments`` (ids; None: every active experiment) matching all ``filters``
    (MLflow filter clauses), newest first, and the names of the experiments searched.

    One ``search_runs`` call per 100 experiments and 1000 runs: never one call per run.
    """
    names = active_experiments(client)
    ids = list(experiments) if experiments is not None else list(names)
    found: list[Any] = []
    for first in range(0, len(ids), _EXPERIMENTS_PER_SEARCH):
        token = None
        while len(found) < max_runs:
            page = client.search_runs(
                ids[first : first + _EXPERIMENTS_PER_SEARCH],
                filter_string=" and ".join(filters),
                max_results=min(_PAGE, max_runs - len(found)),
                order_by=["attributes.start_time DESC"],
                page_token=token,
            )
            found.extend(page)
            token = page.token
            if not token:
                break
    found.sort(key=lambda run: run.info.start_time or 0, reverse=True)
    return found[:max_runs], names


def rows_from_store(
    runs: Iterable[Any], experiment_names: Mapping[str, str], link: Any
) -> list[RunRow]:
    """Rows of MLflow runs; ``link(experiment_id, run_id)`` gives a run's UI address."""
    rows = []
    for run in runs:
        info, data = run.info, run.data
        tags: dict[str, str] = data.tags
        rows.append(
            RunRow(
                run_id=info.run_id,
                name=info.run_name or tags.get("mlflow.runName") or info.run_id,
                status=info.status,
                start_ms=info.start_time,
                end_ms=info.end_time,
                experiment_id=info.experiment_id,
                experiment=experiment_names.get(info.experiment_id),
                notebook=tags.get(_SOURCE_TAG),
                cell=tags.get(_CELL_TAG),
                parent_run_id=tags.get(_PARENT_TAG),
                url=link(info.experiment_id, info.run_id),
                # Code outside nbtrack may have logged a credential as a param: never list it.
                params={k: v for k, v in data.params.items() if not is_secret_name(k)},
                datasets=tags.get(DATASETS_TAG),
                last=dict(data.metrics),
                best=_best_from_tag(tags.get(BEST_TAG), data.metrics),
            )
        )
    return rows


def _best_from_tag(tag: str | None, metrics: Mapping[str, float]) -> dict[str, float]:
    """Best values from the tag nbtrack writes when a cell ends. Without it (a run logged by
    other code, or one still running) the best values are unknown: MLflow keeps only the last
    value of each metric, and reading every history would cost a call per run and metric."""
    best: dict[str, float] = {}
    try:
        stored = json.loads(tag) if tag else {}
    except ValueError:
        stored = {}
    if not isinstance(stored, dict):
        return best
    for name, pair in stored.items():
        if name in metrics and isinstance(pair, list) and pair and _is_number(pair[0]):
            best[name] = float(pair[0])
    return best


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def filter_clause(key: str, value: str, *, like: bool = False) -> str:
    """An MLflow filter clause ``key = 'value'`` (or LIKE); ValueError for a value holding both
    quote characters, which MLflow's filter language cannot express."""
    return f"{key} {'LIKE' if like else '='} {_literal(value)}"


def in_clause(key: str, values: Sequence[str]) -> str:
    """An MLflow filter clause ``key IN ('a', 'b')``."""
    return f"{key} IN ({', '.join(_literal(v) for v in values)})"


def _literal(value: str) -> str:
    quote = "'" if "'" not in value else '"'
    if quote in value:
        msg = f"cannot search MLflow for {value!r}: it holds both ' and \""
        raise ValueError(msg)
    return f"{quote}{value}{quote}"


# ------------------------------------------------------------------ records in a notebook


def rows_from_records(found: Iterable[Any], notebook: Path) -> list[RunRow]:
    """Rows of the readable records found in ``notebook`` (``records_in_notebook``), newest
    first; a run recorded twice is listed once."""
    by_key: dict[str, RunRow] = {}
    for index, item in enumerate(found):
        record = item.record
        if record is None:
            continue
        run = record["run"]
        start, end = run.get("start_time"), run.get("end_time")
        metrics: Mapping[str, Any] = record["metrics"]
        row = RunRow(
            run_id=run.get("id"),
            name=run["name"],
            status=run["status"],
            start_ms=start,
            end_ms=end,
            experiment_id=run.get("experiment_id"),
            experiment=run.get("experiment_name"),
            notebook=str(notebook),
            cell=record["notebook"].get("cell_id") or item.cell_id,
            parent_run_id=None,
            url=record.get("ui_url"),
            params=dict(record["params"]),
            last={
                k: from_json_number(m["last"]) for k, m in metrics.items() if m["last"] is not None
            },
            best={k: float(m["best"]) for k, m in metrics.items() if m.get("best") is not None},
            record=record,
        )
        key = row.run_id or f"cell-{item.cell_index}-{index}"
        by_key.pop(key, None)
        by_key[key] = row
    return sorted(by_key.values(), key=lambda r: r.start_ms or 0, reverse=True)


# ------------------------------------------------------------------ the DataFrame


def dataframe(rows: Sequence[RunRow]) -> Any:
    """The rows as a pandas DataFrame: one row per run, newest first (see ``nbtrack.runs``)."""
    import pandas as pd

    base = []
    param_names: dict[str, None] = {}
    metric_names: dict[str, None] = {}
    for row in rows:
        param_names.update(dict.fromkeys(row.params))
        metric_names.update(dict.fromkeys(row.last))
    for row in rows:
        start = _timestamp(row.start_ms)
        duration = (row.end_ms - row.start_ms) / 1000 if row.end_ms and row.start_ms else math.nan
        entry: dict[str, Any] = {
            "run_id": row.run_id,
            "name": row.name,
            "status": row.status,
            "start": start,
            "duration_s": duration,
            "experiment": row.experiment,
            "notebook": row.notebook,
            "cell": row.cell,
            "parent_run_id": row.parent_run_id,
            "url": row.url,
            "datasets": row.datasets,
        }
        for name in param_names:
            entry[f"params.{name}"] = row.params.get(name)
        for name in metric_names:
            entry[f"last.{name}"] = row.last.get(name, math.nan)
            entry[f"best.{name}"] = row.best.get(name, math.nan)
        base.append(entry)
    columns = ["run_id", "name", "status", "start", "duration_s", "experiment", "notebook",
               "cell", "parent_run_id", "url", "datasets"]  # fmt: skip
    columns += [f"params.{n}" for n in param_names]
    for name in metric_names:
        columns += [f"last.{name}", f"best.{name}"]
    frame = pd.DataFrame(base, columns=columns)
    for name in param_names:
        frame[f"params.{name}"] = _numbers_if_all_are(frame[f"params.{name}"])
    return frame


def _timestamp(epoch_ms: int | None) -> Any:
    """The time as a pandas Timestamp (UTC); NaT when unknown or beyond pandas' range (years
    1677-2262), so that one run's odd start time does not cost the whole table."""
    import pandas as pd

    if not epoch_ms:
        return pd.NaT
    try:
        return pd.Timestamp(epoch_ms, unit="ms", tz="UTC")
    except (OverflowError, ValueError):  # OutOfBoundsDatetime is a ValueError
        return pd.NaT


def _numbers_if_all_are(column: Any) -> Any:
    """Params are text in MLflow; a column whose every value reads as a number becomes numeric,
    so that runs sort and plot by it."""
    import pandas as pd

    present = column.dropna()
    try:
        numbers = [float(v) for v in present]
    except (TypeError, ValueError):
        return column
    try:
        return pd.to_numeric(column)  # integers stay integers (batch 64, not 64.0)
    except (TypeError, ValueError):  # what float() reads and pandas does not: nan, 1_000
        return pd.Series(numbers, index=present.index, dtype="float64").reindex(column.index)
