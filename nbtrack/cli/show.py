"""``nbtrack show NOTEBOOK.ipynb``: the runs recorded in a saved notebook, as a table.

Reads the records that tracked cells left in their outputs; needs no kernel, no tracking store
and no network, so it answers "what did this notebook train, and how did it go?" for any file.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from nbtrack.errors import InvalidRecordError, NotebookError
from nbtrack.record import MIME_TYPE, parse_record

__all__ = ["FoundRecord", "NotebookError", "format_table", "main", "records_in_notebook"]

_KEY_PARAMS = 3
_KEY_METRICS = 3
# Columns that give up width first when the terminal is narrow, and how far they may shrink.
_MIN_WIDTHS = {"cell": 6, "run": 10, "status": 8, "params": 10, "metrics": 14}


@dataclass(frozen=True)
class FoundRecord:
    """A record found in a notebook: the cell it is in and the record (or why it is unreadable)."""

    cell_index: int
    cell_id: str | None
    record: dict[str, Any] | None
    problem: str | None = None


def records_in_notebook(path: str | Path) -> list[FoundRecord]:
    """Every nbtrack record in a notebook's outputs, in cell order.

    A record that fails validation is returned with ``problem`` set instead of raising, so one
    damaged output does not hide the others. Raises ``NotebookError`` when the file cannot be
    read as a notebook.
    """
    return list(_scan(_load(Path(path))))


def _load(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        msg = f"{path}: no such file"
        raise NotebookError(msg) from None
    except IsADirectoryError:
        msg = f"{path}: is a folder, expected an .ipynb file"
        raise NotebookError(msg) from None
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"{path}: cannot read it ({exc})"
        raise NotebookError(msg) from None
    try:
        notebook = json.loads(text)
    except ValueError as exc:
        msg = f"{path}: not a notebook, the file is not valid JSON ({exc})"
        raise NotebookError(msg) from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        msg = f"{path}: not a Jupyter notebook (no list of cells in it)"
        raise NotebookError(msg)
    return notebook


def _scan(notebook: Mapping[str, Any]) -> Iterator[FoundRecord]:
    for index, cell in enumerate(notebook["cells"]):
        if not isinstance(cell, dict):
            continue
        cell_id = cell.get("id") if isinstance(cell.get("id"), str) else None
        outputs = cell.get("outputs")
        for output in outputs if isinstance(outputs, list) else []:
            data = output.get("data") if isinstance(output, dict) else None
            if not isinstance(data, dict) or MIME_TYPE not in data:
                continue
            try:
                yield FoundRecord(index, cell_id, parse_record(data[MIME_TYPE]))
            except InvalidRecordError as exc:
                yield FoundRecord(index, cell_id, None, str(exc))


# --------------------------------------------------------------------------------------------
# The table.


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):  # "NaN", "Infinity", "-Infinity"
        return {"Infinity": "inf", "-Infinity": "-inf"}.get(value, value)
    if isinstance(value, int | float):
        text = f"{value:.4g}"
        if "e" in text:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}e{int(exponent)}"
        return text
    return str(value)


def _key_metrics(metrics: Mapping[str, Any]) -> str:
    # Metrics with a known goal (losses, accuracies) say the most about a run: they go first.
    ranked = sorted(metrics.items(), key=lambda item: item[1].get("goal") is None)
    parts = []
    for name, m in ranked[:_KEY_METRICS]:
        text = f"{name}={_fmt(m.get('last'))}"
        if m.get("best") is not None and m.get("best") != m.get("last"):
            text += f" (best {_fmt(m['best'])})"
        parts.append(text)
    if len(metrics) > _KEY_METRICS:
        parts.append(f"+{len(metrics) - _KEY_METRICS}")
    return ", ".join(parts)


def _key_params(params: Mapping[str, str]) -> str:
    parts = [f"{k}={v}" for k, v in list(params.items())[:_KEY_PARAMS]]
    if len(params) > _KEY_PARAMS:
        parts.append(f"+{len(params) - _KEY_PARAMS}")
    return ", ".join(parts)


def _row(found: FoundRecord) -> dict[str, str]:
    cell = f"{found.cell_index}" + (f" {found.cell_id[:8]}" if found.cell_id else "")
    if found.record is None:
        return {"cell": cell, "run": "?", "status": "UNREADABLE", "params": "",
                "metrics": found.problem or ""}  # fmt: skip
    run = found.record["run"]
    name = run["name"] + (f" ({run['id'][:8]})" if run.get("id") else "")
    status = run["status"]
    error = found.record.get("error")
    if error:
        status += f" {error['type']}"
    return {
        "cell": cell,
        "run": name,
        "status": status,
        "params": _key_params(found.record["params"]),
        "metrics": _key_metrics(found.record["metrics"]),
    }


def _printable(text: str) -> str:
    """One line of text without control characters: a notebook from anyone must not be able to
    send escape sequences to the terminal."""
    return "".join(ch if ch.isprintable() else "?" for ch in " ".join(text.split()))


def _clip(text: str, width: int) -> str:
    text = _printable(text)
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def _fit(widths: dict[str, int], total: int) -> dict[str, int]:
    """Shrink the widest columns first until the table fits in ``total`` characters."""
    gaps = 2 * (len(widths) - 1)
    fitted = dict(widths)
    while sum(fitted.values()) + gaps > total:
        shrinkable = [c for c in fitted if fitted[c] > _MIN_WIDTHS[c]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=fitted.__getitem__)
        fitted[widest] -= 1
    return fitted


def format_table(found: Sequence[FoundRecord], width: int) -> str:
    """The records as aligned columns no wider than ``width`` characters (long cells are cut)."""
    rows = [_row(f) for f in found]
    columns = list(_MIN_WIDTHS)
    natural = {c: max([len(c)] + [len(_printable(r[c])) for r in rows]) for c in columns}
    widths = _fit(natural, width)
    lines = ["  ".join(_clip(c, widths[c]).ljust(widths[c]) for c in columns).rstrip()]
    for row in rows:
        line = "  ".join(_clip(row[c], widths[c]).ljust(widths[c]) for c in columns)
        lines.append(line.rstrip())
    return "\n".join(lines)


def main(notebook_path: str, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Print the runs recorded in a notebook (the ``nbtrack show`` command).

    Returns 0 when at least one record could be read, 1 when the file is not a readable
    notebook or holds no readable record; problems go to ``err`` (stderr).
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    try:
        found = records_in_notebook(notebook_path)
    except NotebookError as exc:
        print(f"nbtrack show: {exc}", file=err)
        return 1
    if not found:
        print(
            f"nbtrack show: {notebook_path}: no nbtrack runs recorded in this notebook. Records "
            "are written when a `%%track` cell ends; was the notebook saved after running it?",
            file=err,
        )
        return 1
    width = shutil.get_terminal_size(fallback=(100, 24)).columns
    print(format_table(found, width), file=out)
    for f in found:
        if f.problem:
            print(f"nbtrack show: cell {f.cell_index}: {_printable(f.problem)}", file=err)
    return 0 if any(f.record is not None for f in found) else 1
