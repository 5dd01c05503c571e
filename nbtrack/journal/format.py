"""The journal's line format: what the kernel appends and the sync process reads back.

A run's journal (``<run>.spool``) holds one JSON document per line; ``t`` says what it is:

- ``start``: the run's identity (experiment name, run name, start time, tags);
- ``b``: a batch of metric points, below;
- ``p``: params; ``g``: tags; ``a``: an artifact nbtrack staged (path relative to the run's
  ``.files`` folder, and its destination among the run's artifacts); ``x``: an artifact path
  to delete from the run (a superseded checkpoint);
- ``end``: status, end time, and how many points could not be written, if any.

A ``b`` line holds its points as packed little-endian arrays in base64, which the kernel writes
without a Python loop over points (JSON numbers would cost it ~0.3 µs per point):
``{"t": "b", "ts": [seconds...], "m": {key: [steps, values, ts_index]}}``. ``ts`` lists float64
arrays of unix times, one per group of metrics logged by the same calls; ``values`` is a
float64 array; ``steps`` is the first of consecutive steps (an int) or an int64 array.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nbtrack._model import MetricPoints

__all__ = [
    "FORMAT_VERSION",
    "decode_line",
    "encode",
    "metrics_line",
    "read_lines",
    "run_ended",
    "unpack",
]

# session.json carries it; a sync process leaves alone what a later format wrote.
FORMAT_VERSION = 2
_END_LINE = b'{"t":"end"'


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
