"""What a record is: its MIME type, its schema version, what it is built from, how it is read.

The JSON Schema next to this module (``record_schema.json``, described in
docs/record-schema.md) is the contract between the writer (``build``) and every reader: the
lab extension, ``nbtrack show`` and the HTML/SVG renderings.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbtrack._model import SYNC_STATES, RunFailure, Status
from nbtrack.errors import InvalidRecordError
from nbtrack.record.axes import AXES

if TYPE_CHECKING:
    from nbtrack._curves import Curve

__all__ = [
    "MAX_NOTEBOOK_VALUES",
    "MAX_RECORD_BYTES",
    "MIME_TYPE",
    "SCHEMA_VERSION",
    "STATUSES",
    "SYNC_STATES",
    "RecordSource",
    "ValueBudget",
    "check_record_bounds",
    "oversized",
    "parse_record",
    "record_layout",
    "record_panels",
]

MIME_TYPE = "application/vnd.nbtrack.run+json"
# 2 added "panels"; version 1 records (without it) are still read, one panel per metric.
# 3 added point times ("times" in curves), each panel's x axis ("panel_x"), metrics without a
# curve, and "metrics_omitted"; older records are still read, against the step.
SCHEMA_VERSION = 3

# What a reader parses at most before it refuses a record: nbtrack writes a few thousand JSON
# values at most, nested six deep. A record far beyond that was not written by nbtrack, and
# validating it would take minutes (issue 11, item 17).
MAX_RECORD_VALUES = 200_000
MAX_RECORD_DEPTH = 32
# nbtrack writes records of ~40 KB (saved, indented): one 50x that is not nbtrack's.
MAX_RECORD_BYTES = 2 * 1024 * 1024
# jsonschema takes 5-15 us a value: validating the records of one notebook takes a few seconds
# at most, whatever the file. That is 40 records of the largest kind nbtrack writes (a sweep's,
# ~7,500 values), or 100 of the usual (~3,000).
MAX_NOTEBOOK_VALUES = 300_000
# Python's parser reads any integer: larger ones no reader can turn into a float.
_LARGEST_NUMBER = int(sys.float_info.max)
# A refusal is one line: jsonschema's message may quote a whole value of the record.
_MAX_MESSAGE_CHARS = 240

STATUSES = tuple(status.value for status in Status)


@dataclass(frozen=True)
class RecordSource:
    """Everything a record is built from, gathered by the run when its cell ends.

    ``status`` is one of FINISHED, FAILED, KILLED, RUNNING; ``sync_state`` one of synced,
    syncing, offline. ``error`` is the run's ``nbtrack._model.RunFailure`` or a mapping with
    the keys type, message and (optionally) step; its traceback never goes into the record.
    ``tracking_uri`` and ``ui_url`` may carry credentials: they are removed here. ``params``
    should already lack secrets; credential-like names are dropped again.
    """

    run_id: str | None
    run_name: str
    experiment_id: str | None
    experiment_name: str | None
    status: str
    start_time_ms: int
    end_time_ms: int | None
    tracking_uri: str | None
    ui_url: str | None
    notebook_path: str | None
    cell_id: str | None
    params: Mapping[str, str]
    curves: Mapping[str, Curve]
    error: RunFailure | Mapping[str, Any] | None = None
    sync_state: str = "synced"
    pending_points: int = 0
    # What could not be made durable and will never be in the store, and why.
    lost_points: int = 0
    lost_items: int = 0
    lost_reason: str | None = None
    # A sweep's parent: its trials (nbtrack.record.sweep.sweep_json says what it holds).
    sweep: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.error, Mapping):
            missing = {"type", "message"} - set(self.error)
            if missing:
                msg = f"error needs the keys type and message (step optional), got {self.error!r}"
                raise ValueError(msg)
            failure = RunFailure(
                str(self.error["type"]), str(self.error["message"]), step=self.error.get("step")
            )
            object.__setattr__(self, "error", failure)  # frozen: normalised once, here
        if self.status not in STATUSES:
            msg = f"status must be one of {', '.join(STATUSES)}, got {self.status!r}"
            raise ValueError(msg)
        if self.sync_state not in SYNC_STATES:
            msg = f"sync_state must be one of {', '.join(SYNC_STATES)}, got {self.sync_state!r}"
            raise ValueError(msg)


@functools.cache
def _validator() -> Any:
    import jsonschema  # lazily: only readers of records need it, ~0.1 s to import

    schema = json.loads(Path(__file__).with_name("record_schema.json").read_text("utf-8"))
    return jsonschema.Draft202012Validator(schema)


class ValueBudget:
    """The JSON values that the records of one notebook may still have validated: a notebook
    from anyone gets ``MAX_NOTEBOOK_VALUES`` in all, whatever the number of its records."""

    def __init__(self, total: int = MAX_NOTEBOOK_VALUES) -> None:
        self.total = total
        self.left = total

    def spend(self, count: int) -> None:
        """Take ``count`` values from the budget, or raise ``InvalidRecordError`` (taking none)
        when fewer are left."""
        if count > self.left:
            msg = (
                f"refused: this notebook's records hold over {self.total:,} values in all, more "
                "than nbtrack checks in one notebook (it writes a few thousand a record)"
            )
            raise InvalidRecordError(msg)
        self.left -= count


def parse_record(data: object, *, budget: ValueBudget | None = None) -> dict[str, Any]:
    """A record read back from a notebook (dict or JSON text), checked against the schema.

    Raises ``InvalidRecordError`` saying where the record is wrong, that it is far larger or
    deeper than any record nbtrack writes (checked first, in bounded time), that ``budget``
    (the values left to validate of the records of one notebook) is spent, or that it was
    written by a newer nbtrack (schema version above this one's), in which case upgrading
    nbtrack helps. The message is one line.
    """
    import jsonschema  # lazily, see _validator

    if isinstance(data, str | bytes):
        data = _from_json_text(data)
    if not isinstance(data, dict):
        msg = f"an nbtrack record is a JSON object, got {type(data).__name__}"
        raise InvalidRecordError(msg)
    count = check_record_bounds(data)
    found = data.get("schema")
    if isinstance(found, int) and not isinstance(found, bool) and found > SCHEMA_VERSION:
        msg = (
            f"this record has schema version {found}, written by a newer nbtrack; this "
            f"nbtrack reads version {SCHEMA_VERSION}: upgrade nbtrack (pip install -U nbtrack)"
        )
        raise InvalidRecordError(msg)
    if budget is not None:
        budget.spend(count)
    # Only the first error: jsonschema finds them lazily, keyword by keyword in the schema's
    # order, so a record wrong everywhere costs no more than a valid one, and an array's
    # maxItems (listed before its items) refuses it before its items are checked. best_match
    # then picks the most telling cause within that error (e.g. inside a oneOf).
    first = next(iter(_validator().iter_errors(data)), None)
    if first is not None:
        error = jsonschema.exceptions.best_match([first])
        where = "/".join(str(part) for part in error.absolute_path) or "the top level"
        msg = f"not a valid nbtrack record (schema {found!r}): at {where}: {error.message}"
        raise InvalidRecordError(_one_line(msg))
    _check_curves(data, found)
    return data


def _check_curves(record: dict[str, Any], schema: object) -> None:
    """What the JSON schema cannot say: a curve's steps, values and times are of one length
    (every reader pairs them up by index)."""
    places = [
        (f"metrics/{name}/curve", entry.get("curve"))
        for name, entry in record["metrics"].items()
        if isinstance(entry, dict)
    ]
    trials = (record.get("sweep") or {}).get("trials") or []
    places += [(f"sweep/trials/{i}/curve", trial.get("curve")) for i, trial in enumerate(trials)]
    for where, curve in places:
        if not isinstance(curve, dict) or not isinstance(curve.get("steps"), list):
            continue
        n_steps = len(curve["steps"])
        for column in ("values", "times"):
            if isinstance(curve.get(column), list) and len(curve[column]) != n_steps:
                msg = (
                    f"not a valid nbtrack record (schema {schema!r}): at {where}: {n_steps} "
                    f"steps and {len(curve[column])} {column}; a curve's columns are of one length"
                )
                raise InvalidRecordError(_one_line(msg))


def oversized(n_bytes: int) -> InvalidRecordError:
    """The refusal of a record whose JSON text is ``n_bytes`` long (over ``MAX_RECORD_BYTES``)."""
    msg = (
        f"refused: the record is {n_bytes / 2**20:,.1f} MB of JSON text; nbtrack writes "
        "~100 KB, so it was not written by nbtrack (or was damaged)"
    )
    return InvalidRecordError(msg)


def _from_json_text(text: str | bytes) -> object:
    if len(text) > MAX_RECORD_BYTES:
        raise oversized(len(text))
    try:
        return json.loads(text)
    except RecursionError:
        msg = "refused: the record's JSON text is nested deeper than Python's parser allows"
        raise InvalidRecordError(msg) from None
    except ValueError as exc:
        msg = f"an nbtrack record must be JSON, this is not: {exc}"
        raise InvalidRecordError(_one_line(msg)) from exc


def _one_line(text: str) -> str:
    """``text`` on one short line: cut in the middle, where jsonschema quotes the value, so that
    where it is and what is wrong with it stay."""
    text = " ".join(text.split())
    if len(text) <= _MAX_MESSAGE_CHARS:
        return text
    tail = _MAX_MESSAGE_CHARS // 4
    return f"{text[: _MAX_MESSAGE_CHARS - tail - 3]} … {text[-tail:]}"


def record_panels(record: Mapping[str, Any]) -> list[list[str]]:
    """The chart panels to draw for a record, each a list of metric names, in display order.

    These are the record's own ``panels``; a schema-1 record has none and gets one panel per
    metric. The lab extension reads them by the same rule (labextension/src/record.ts): names
    that are not metrics of the record are skipped, a metric is drawn in the first panel that
    names it, and a metric no panel names gets a panel of its own, so nothing goes missing.
    """
    return [panel for panel, _ in record_layout(record)]


def check_record_bounds(data: object) -> int:
    """How many JSON values ``data`` holds; raises ``InvalidRecordError`` when they are more
    than ``MAX_RECORD_VALUES``, nest deeper than ``MAX_RECORD_DEPTH``, or one is a number no
    float holds (NaN, infinity, beyond 1.8e308: Python's parser reads them, readers fail on them).

    Stops at the first value over either bound, so its cost is bounded whatever the size of
    ``data``; no recursion, so any depth is safe.
    """
    count = 0
    stack: list[tuple[object, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_RECORD_VALUES:
            msg = (
                f"refused: the record holds over {MAX_RECORD_VALUES:,} values; nbtrack writes "
                "a few thousand at most, so it was not written by nbtrack (or was damaged)"
            )
            raise InvalidRecordError(msg)
        if isinstance(value, float | int) and not _is_finite(value):
            msg = (
                "refused: the record holds a number JSON readers cannot use (NaN, infinity or "
                'beyond 1.8e308); nbtrack writes NaN and infinity as the text "NaN", "Infinity"'
            )
            raise InvalidRecordError(msg)
        if isinstance(value, dict | list):
            if depth > MAX_RECORD_DEPTH:
                msg = (
                    f"refused: the record is nested over {MAX_RECORD_DEPTH} levels deep; "
                    "nbtrack writes six at most, so it was not written by nbtrack"
                )
                raise InvalidRecordError(msg)
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
    return count


def _is_finite(number: float | int) -> bool:
    if isinstance(number, float):
        return math.isfinite(number)
    return -_LARGEST_NUMBER <= number <= _LARGEST_NUMBER


def record_layout(record: Mapping[str, Any]) -> list[tuple[list[str], str]]:
    """``record_panels`` with each panel's x axis: ``"step"`` or ``"relative"`` (time since
    the run started), as the record's ``panel_x`` says (records before schema 3: the step).

    A panel that ``record_panels`` made up for metrics no panel named is drawn against the step.
    """
    raw_axes = record.get("panel_x")
    axes = raw_axes if isinstance(raw_axes, list) else []
    metrics = record["metrics"]
    layout: list[tuple[list[str], str]] = []
    placed: set[str] = set()
    for index, panel in enumerate(record.get("panels") or ()):
        kept = []
        for name in panel:
            if isinstance(name, str) and name in metrics and name not in placed:
                kept.append(name)
                placed.add(name)
        if kept:
            axis = axes[index] if index < len(axes) and axes[index] in AXES else "step"
            layout.append((kept, axis))
    layout.extend(([name], "step") for name in metrics if name not in placed)
    return layout
