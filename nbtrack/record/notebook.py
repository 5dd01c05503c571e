"""The records a saved notebook holds, read without a kernel, a store or network.

A notebook can come from anyone, so reading it is bounded: the file is read once; a record whose
text is far larger than any nbtrack writes is cut out of it before the JSON is parsed (so a
50 MB record costs neither a 50 MB parse nor minutes of validation), in a few passes over the
file at most; a file that would still build millions of Python objects, or whose JSON is
nested deeper than Python's parser allows, is refused with one line; every record left is
checked against its bounds and its schema (``parse_record``), within a budget of values for the
whole notebook. ``nbtrack show``, ``nbtrack.runs(notebook=...)`` and ``nbtrack.compare`` read
notebooks through here.
"""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbtrack.errors import InvalidRecordError, NotebookError
from nbtrack.record.schema import (
    MAX_RECORD_BYTES,
    MIME_TYPE,
    ValueBudget,
    oversized,
    parse_record,
)

__all__ = [
    "MAX_NOTEBOOK_BYTES",
    "MAX_NOTEBOOK_ITEMS",
    "MAX_RECORD_BYTES",
    "FoundRecord",
    "records_in_notebook",
]

# Beyond this a file is refused unread: GitHub refuses files over 100 MB, and JupyterLab opens
# one only slowly long before.
MAX_NOTEBOOK_BYTES = 100 * 1024 * 1024
# What parsing the file may build: each "{}", "[]" or short string in a list costs 30-70 bytes
# as a Python object (a 30 MB file of "{}" took 1.5 GB). Counted from above (braces, brackets
# and commas, in strings too) before parsing: ~300 MB at most; the notebooks nbtrack writes
# hold ~40 per KB, images none.
MAX_NOTEBOOK_ITEMS = 5_000_000

# The record's key as nbformat writes it: on its own line, its object opening on the same line.
_KEY = b'"' + MIME_TYPE.encode() + b'": {\n'
_CUT = b'"nbtrack: record of %d bytes left unread"'
_CUT_TEXT = re.compile(r"nbtrack: record of (\d{1,15}) bytes left unread")
# nbformat saves output data six levels deep (notebook, cells, a cell, outputs, an output, data),
# so a record's key is indented six times the file's indent: 6 spaces as Jupyter saves, up to 8
# per level. Only these indents are searched for a closing line, each search remembered, so the
# file is read a few times at most however many keys it holds (see _ClosingLines).
_MAX_INDENT = 6 * 8
_INDENTS = frozenset(b" " * n for n in range(6, _MAX_INDENT + 1, 6))


@dataclass(frozen=True)
class FoundRecord:
    """A record found in a notebook: the cell it is in and the record (or why it is unreadable)."""

    cell_index: int
    cell_id: str | None
    record: dict[str, Any] | None
    problem: str | None = None


def records_in_notebook(path: str | Path) -> list[FoundRecord]:
    """Every nbtrack record in a notebook's outputs, in cell order.

    A record that fails validation, or is refused as far too large or deep, or as beyond what
    one notebook gets validated (``MAX_NOTEBOOK_VALUES`` values in all), is returned with
    ``problem`` set (one line) instead of raising, so one damaged output does not hide the
    others. Raises ``NotebookError`` when the file cannot be read as a notebook, or is far
    larger than any notebook nbtrack reads.
    """
    return list(_scan(_load(Path(path))))


def _load(path: Path) -> Mapping[str, Any]:
    try:
        status = path.stat()
        if stat.S_ISDIR(status.st_mode):
            raise IsADirectoryError(path)
        if not stat.S_ISREG(status.st_mode):  # a device or a pipe: its size says nothing
            msg = f"{path}: not a file (a device, a pipe or a socket), expected an .ipynb file"
            raise NotebookError(msg)
        size = status.st_size
        if size > MAX_NOTEBOOK_BYTES:
            msg = (
                f"{path}: refused, the file is {size / 2**20:,.0f} MB "
                f"(nbtrack reads notebooks up to {MAX_NOTEBOOK_BYTES // 2**20:,} MB)"
            )
            raise NotebookError(msg)
        data = path.read_bytes()
    except FileNotFoundError:
        msg = f"{path}: no such file"
        raise NotebookError(msg) from None
    except IsADirectoryError:
        msg = f"{path}: is a folder, expected an .ipynb file"
        raise NotebookError(msg) from None
    except OSError as exc:
        msg = f"{path}: cannot read it ({exc})"
        raise NotebookError(msg) from None
    text = _without_huge_records(data)
    _check_items(path, text)
    try:
        notebook = json.loads(text)
    except RecursionError:
        msg = f"{path}: refused, its JSON is nested deeper than any notebook's"
        raise NotebookError(msg) from None
    except UnicodeDecodeError as exc:
        msg = f"{path}: cannot read it ({exc})"
        raise NotebookError(msg) from None
    except ValueError as exc:
        msg = f"{path}: not a notebook, the file is not valid JSON ({exc})"
        raise NotebookError(msg) from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        msg = f"{path}: not a Jupyter notebook (no list of cells in it)"
        raise NotebookError(msg)
    return notebook


def _check_items(path: Path, text: bytes) -> None:
    # bytes.count reads at memory speed (~0.1 s for 100 MB): far cheaper than finding out by
    # parsing.
    items = text.count(b"{") + text.count(b"[") + text.count(b",")
    if items > MAX_NOTEBOOK_ITEMS:
        msg = (
            f"{path}: refused, it holds over {MAX_NOTEBOOK_ITEMS:,} JSON values (objects, "
            "arrays, list items), more than nbtrack reads in one notebook"
        )
        raise NotebookError(msg)


def _without_huge_records(data: bytes) -> bytes:
    """The file with every record over ``MAX_RECORD_BYTES`` replaced by a short string.

    A record nbformat saved is an object whose closing brace is the first line after it
    indented like its key. Records written otherwise (compact JSON, which no Jupyter writes)
    are not cut: ``MAX_NOTEBOOK_ITEMS`` bounds what parsing them costs, and ``parse_record``
    refuses each one far larger than nbtrack's.
    """
    closing = _ClosingLines(data)
    pieces: list[bytes] = []
    kept_from = 0
    at = data.find(_KEY)  # bytes.find, not a regex: ~1000x faster over a 100 MB file
    while at >= 0:
        value_start = at + len(_KEY) - 2  # the "{"
        end = closing.end(at, value_start)
        if end - value_start > MAX_RECORD_BYTES:
            pieces += [data[kept_from:value_start], _CUT % (end - value_start)]
            kept_from = end
        at = data.find(_KEY, max(at + 1, kept_from))
    if not pieces:
        return data
    pieces.append(data[kept_from:])
    return b"".join(pieces)


class _ClosingLines:
    """Where the object opened on a record key's line closes, as nbformat saves it: at the first
    later line that is the key's indent and "}" (JSON strings cannot hold raw newlines, so no
    text can fake one).

    A file can hold thousands of keys whose objects never close that way: each search for an
    indent is remembered (where it started, what it found), so that no byte is read twice for
    the same indent, instead of once per key (an 8 MB file took 88 s).
    """

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._searched: dict[bytes, tuple[int, int]] = {}  # indent: (from, found at or -1)

    def end(self, key_at: int, value_start: int) -> int:
        """Just past the closing brace of the object at ``value_start``, whose key starts at
        ``key_at``; -1 when the key is not indented as nbformat indents one, or the object does
        not close on a line of its own."""
        data = self._data
        newline = data.rfind(b"\n", max(0, key_at - _MAX_INDENT - 1), key_at)
        # Only spaces before the key on its line: JSON structure, not text inside a string
        # (where the key's quotes would be escaped anyway).
        indent = data[newline + 1 : key_at] if newline >= 0 else b"-"
        if indent not in _INDENTS:
            return -1
        needle = b"\n" + indent + b"}"
        since, found = self._searched.get(indent, (-1, -1))
        # The first closing line from `since` is `found`: also the first from `value_start`
        # when it lies between them (or there is none).
        if not (0 <= since <= value_start and (found < 0 or found >= value_start)):
            found = data.find(needle, value_start)
            self._searched[indent] = (value_start, found)
        return -1 if found < 0 else found + len(needle)


def _scan(notebook: Mapping[str, Any]) -> Iterator[FoundRecord]:
    budget = ValueBudget()  # validating a value costs ~10 us: a notebook gets a few seconds
    for index, cell in enumerate(notebook["cells"]):
        if not isinstance(cell, dict):
            continue
        cell_id = cell.get("id") if isinstance(cell.get("id"), str) else None
        outputs = cell.get("outputs")
        for output in outputs if isinstance(outputs, list) else []:
            data = output.get("data") if isinstance(output, dict) else None
            if not isinstance(data, dict) or MIME_TYPE not in data:
                continue
            record, problem = _read(data[MIME_TYPE], budget)
            yield FoundRecord(index, cell_id, record, problem)


def _read(value: object, budget: ValueBudget) -> tuple[dict[str, Any] | None, str | None]:
    """A record and None, or None and why it cannot be read (one line)."""
    # The string _without_huge_records leaves. A file may hold a forged one: it then only says
    # what a real huge record would have said.
    cut = _CUT_TEXT.fullmatch(value) if isinstance(value, str) else None
    try:
        if cut is not None:
            raise oversized(int(cut[1]))
        return parse_record(value, budget=budget), None
    except InvalidRecordError as exc:
        return None, str(exc)
