"""The journal's line format: what the kernel appends and the sync process reads back.

A run's journal (``<run>.spool``) holds one JSON document per line; ``t`` says what it is:

- ``start``: the run's identity (experiment name, or an experiment id with the name to use if
  the store has no such experiment; run name, start time, tags);
- ``b``: a batch of metric points, below;
- ``p``: params; ``g``: tags; ``a``: an artifact nbtrack staged (path relative to the run's
  ``.files`` folder, and its destination among the run's artifacts); ``x``: an artifact path
  to delete from the run (a superseded checkpoint);
- ``end``: status, end time, and how many points could not be written, if any.

The sync process reads lines back checked (``batch_columns``, ``mapping``, ``end_fields``,
``start_fields``): a line that is JSON but does not fit this format (a flipped byte, a hand
edit) raises ``MalformedLine``, and is skipped and counted like a torn line, never stopping the
upload of the lines after it.

A ``b`` line holds its points as packed little-endian arrays in base64, which the kernel writes
without a Python loop over points (JSON numbers would cost it ~0.3 µs per point):
``{"t": "b", "ts": [seconds...], "m": {key: [steps, values, ts_index]}}``. ``ts`` lists float64
arrays of unix times, one per group of metrics logged by the same calls; ``values`` is a
float64 array; ``steps`` is the first of consecutive steps (an int) or an int64 array.
A line holds about ``LINE_POINTS`` points at most: the sender's flush of a fast loop is
written as several lines, each with a part of every metric's points.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbtrack._model import MetricPoints

__all__ = [
    "FORMAT_VERSION",
    "LINE_POINTS",
    "SKIPPED_LOG",
    "End",
    "MalformedLine",
    "Start",
    "batch_columns",
    "decode_line",
    "encode",
    "end_fields",
    "experiment_label",
    "line_content",
    "mapping",
    "metrics_line",
    "metrics_lines",
    "optional_text",
    "read_lines",
    "run_ended",
    "start_fields",
    "unpack",
    "whole",
]

# session.json carries it; a sync process leaves alone what a later format wrote.
FORMAT_VERSION = 2
# The most points one ``b`` line holds (more only where one call logged more metrics). The
# paced upload rests after whole lines (``pacer.PIECE_POINTS``), so a line of a whole flush (a
# fast loop's 0.5 s: thousands of points, 0.2-0.7 s of MLflow's work) would be one burst
# however small a piece; a line of 250 is ~25 ms of that work. Writing a flush as several
# lines costs the sender a few µs a line.
LINE_POINTS = 250
_END_LINE = b'{"t":"end"'
# What reading a line that is JSON but not this format raises: a missing key, an index out of
# range, a value of the wrong type, base64 or a packed array of the wrong length
# (binascii.Error is a ValueError).
_MISFIT_ERRORS = (AttributeError, IndexError, KeyError, TypeError, ValueError)
_END_STATUSES = frozenset({"FINISHED", "FAILED", "KILLED"})
# How the sync process logs a line it skips (journal, byte offset, why): one line, no traceback.
SKIPPED_LOG = "journal %s: skipped the line at byte %d, %s; counted: the run will end FAILED"


class MalformedLine(Exception):
    """A journal line the sync process cannot use: torn (not JSON), or JSON that does not fit
    this format. It is skipped and counted (the run then ends FAILED, saying how many), so that
    one bad line never stops the lines after it."""


def encode(record: dict[str, Any]) -> bytes:
    # NaN and inf are legal metric values; Python's json writes and reads them as NaN/Infinity.
    return json.dumps(record, separators=(",", ":"), allow_nan=True).encode() + b"\n"


def pack(values: array[Any]) -> str:
    """An array as base64 of its little-endian bytes (a journal may be read on another
    machine)."""
    if sys.byteorder != "little":
        values = array(values.typecode, values)
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode("ascii")


def unpack(text: str, typecode: str) -> array[Any]:
    values = array(typecode)
    values.frombytes(base64.b64decode(text))
    if sys.byteorder != "little":
        values.byteswap()
    return values


def metrics_line(metrics: dict[str, MetricPoints]) -> dict[str, Any]:
    """A ``b`` line: packed arrays, no per-point work."""
    times: list[array[float]] = []  # distinct time columns; metrics of the same calls share one
    encoded: dict[str, list[Any]] = {}
    for key, points in metrics.items():
        index = next((i for i, known in enumerate(times) if known is points.seconds), len(times))
        if index == len(times):
            times.append(points.seconds)
        steps = points.steps
        encoded[key] = [
            steps.start if isinstance(steps, range) else pack(steps),
            pack(points.values),
            index,
        ]
    return {"t": "b", "ts": [pack(column) for column in times], "m": encoded}


def metrics_lines(
    metrics: dict[str, MetricPoints], max_points: int = LINE_POINTS
) -> Iterator[tuple[dict[str, Any], int]]:
    """A batch's ``b`` lines, each with how many points it holds: one line, or as many as it
    takes to keep each to ``max_points``. Line i holds the i-th part of every metric's points,
    so every line spans about the same time and the last holds each metric's newest point,
    which is the line the preview reads (``preview.py``). Metrics of the same calls are cut
    at the same calls and keep sharing their time column."""
    if not metrics:
        return
    total = sum(len(points.values) for points in metrics.values())
    count = -(-total // max_points)
    if count <= 1:
        yield metrics_line(metrics), total
        return
    groups: dict[int, list[str]] = {}  # metrics by their time column: those of the same calls
    for key, points in metrics.items():
        groups.setdefault(id(points.seconds), []).append(key)
    for line in range(count):
        part: dict[str, MetricPoints] = {}
        for keys in groups.values():
            calls = len(metrics[keys[0]].seconds)
            cut = slice(calls * line // count, calls * (line + 1) // count)
            seconds = metrics[keys[0]].seconds[cut]
            if seconds:
                for key in keys:
                    points = metrics[key]
                    part[key] = MetricPoints(points.steps[cut], points.values[cut], seconds)
        if part:
            yield metrics_line(part), sum(len(points.values) for points in part.values())


def read_lines(
    path: Path, offset: int, max_bytes: int
) -> Iterator[tuple[dict[str, Any] | None, int]]:
    """Complete lines from ``offset`` on, each with the offset just past it.

    A last line without its newline is a write in progress and is left for later. A line that
    is not JSON (torn by a crash or a full disk) comes as None, to be skipped and reported.
    Nothing is read past ``max_bytes`` (bounded memory however big the journal is).
    """
    with path.open("rb") as handle:
        handle.seek(offset)
        data = handle.read(max_bytes)
        end = data.rfind(b"\n")
        if end < 0:
            if len(data) >= max_bytes:  # one line longer than max_bytes: read it whole
                handle.seek(offset)
                line = handle.readline()
                if line.endswith(b"\n"):
                    yield decode_line(line), offset + len(line)
            return
    position = offset
    for line in data[: end + 1].splitlines(keepends=True):
        position += len(line)
        if line.strip():
            yield decode_line(line), position


def decode_line(line: bytes) -> dict[str, Any] | None:
    """One journal line as its JSON document, or None if it is not one (a torn line)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("t"), str) else None


def run_ended(path: Path) -> bool:
    """Whether the kernel wrote a journal's ``end`` line: it is always the last line."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - 256))
            tail = handle.read()
    except OSError:
        return False
    return _END_LINE in tail[tail.rfind(b"\n", 0, len(tail) - 1) + 1 :]


def batch_columns(
    record: dict[str, Any],
) -> list[tuple[str, Sequence[int], array[Any], array[Any]]]:
    """A ``b`` line's metrics as ``(key, steps, values, seconds)``, the three of one length.
    Raises ``MalformedLine`` if the line does not fit the format: then none of it is used."""
    try:
        times = [unpack(column, "d") for column in record["ts"]]
        columns = []
        for key, (packed_steps, packed_values, index) in record["m"].items():
            values, seconds = unpack(packed_values, "d"), times[index]
            steps: Sequence[int] = (
                range(packed_steps, packed_steps + len(values))
                if isinstance(packed_steps, int)
                else unpack(packed_steps, "q")
            )
            if not len(steps) == len(values) == len(seconds):
                msg = f"{len(steps)} steps, {len(values)} values, {len(seconds)} times"
                raise ValueError(msg)
            columns.append((key, steps, values, seconds))
    except _MISFIT_ERRORS as error:
        raise _malformed(error) from error
    return columns


def line_content(kind: str, record: dict[str, Any] | None) -> Any:
    """What a line other than ``b`` asks for, checked before anything is sent: the params or
    tags, an artifact's ``(path, destination)``, a path to delete, the ``End``. Raises
    ``MalformedLine`` if the line is torn (None) or does not fit the format."""
    record = whole(record)
    if kind in ("p", "g"):
        return mapping(record, kind)
    if kind == "a":
        return str(record.get("path", "")), optional_text(record, "dest")
    if kind == "x":
        return str(record.get("path", ""))
    if kind == "end":
        return end_fields(record)
    return record  # the start line (checked when the run is created), and kinds to come


def whole(record: dict[str, Any] | None) -> dict[str, Any]:
    """A line read back (``read_lines``), or ``MalformedLine`` if it was torn (None)."""
    if record is None:
        msg = "not JSON: torn by a crash or a full disk"
        raise MalformedLine(msg)
    return record


def mapping(record: dict[str, Any], key: str) -> dict[str, Any]:
    """The object under ``key`` (a ``p`` line's params, a ``g`` line's tags); ``MalformedLine``
    if it is something else."""
    content = record.get(key)
    if not isinstance(content, dict):
        raise _misfit(f"{key!r} holds {type(content).__name__}, not an object")
    return content


def optional_text(record: dict[str, Any], key: str) -> str | None:
    """The string under ``key``, or None if it is absent; ``MalformedLine`` if it is not text."""
    content = record.get(key)
    if content is not None and not isinstance(content, str):
        raise _misfit(f"{key!r} holds {type(content).__name__}, not text")
    return content


@dataclass(frozen=True)
class End:
    """An ``end`` line, checked."""

    status: str
    end_time: int
    lost_points: int = 0
    lost_items: int = 0
    problem: str | None = None


def end_fields(record: dict[str, Any]) -> End:
    """An ``end`` line's fields; ``MalformedLine`` if it does not fit the format."""
    status = record.get("status", "FAILED")
    if status not in _END_STATUSES:
        raise _misfit(f"end status {status!r} is none of {', '.join(sorted(_END_STATUSES))}")
    try:
        return End(
            status=status,
            end_time=int(record["end_time"]),
            lost_points=int(record.get("lost_points") or 0),
            lost_items=int(record.get("lost_items") or 0),
            problem=None if record.get("problem") is None else str(record["problem"]),
        )
    except _MISFIT_ERRORS as error:
        raise _malformed(error) from error


@dataclass(frozen=True)
class Start:
    """A ``start`` line, checked."""

    experiment_name: str
    run_name: str | None
    start_time: int
    tags: dict[str, str]
    parent: str | None
    # An experiment chosen by id; ``experiment_name`` is where the run goes if it is not found.
    experiment_id: str | None = None


def start_fields(record: dict[str, Any]) -> Start:
    """A ``start`` line's fields; ``MalformedLine`` if it does not fit the format."""
    try:
        return Start(
            experiment_name=str(record.get("experiment_name") or "Default"),
            run_name=optional_text(record, "run_name"),
            start_time=int(record["start_time"]),
            tags={str(k): str(v) for k, v in (record.get("tags") or {}).items()},
            parent=optional_text(record, "parent"),
            experiment_id=optional_text(record, "experiment_id"),
        )
    except _MISFIT_ERRORS as error:
        raise _malformed(error) from error


def experiment_label(record: dict[str, Any]) -> str:
    """How a message names the experiment of a ``start`` line, which may not fit the format."""
    if record.get("experiment_id"):
        return f"id {record['experiment_id']}"
    return str(record.get("experiment_name") or "Default")


def _malformed(error: BaseException) -> MalformedLine:
    """``error`` (raised while reading a line) as the reason the line does not fit."""
    return _misfit(f"{type(error).__name__}: {error}".splitlines()[0])


def _misfit(why: str) -> MalformedLine:
    return MalformedLine(f"not in nbtrack's journal format ({why[:300]})")
