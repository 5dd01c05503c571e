"""``nbtrack show NOTEBOOK.ipynb [--run NAME_OR_ID] [--json]``: the runs recorded in a saved
notebook, as a table, one run in detail, or JSON for scripts.

Reads the records that tracked cells left in their outputs (``nbtrack.record.notebook``, which
refuses huge or hostile records in bounded time and memory); needs no kernel, no tracking store
and no network, so it answers "what did this notebook train, and how did it go?" for any file.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from nbtrack.errors import NotebookError
from nbtrack.record.format import fmt_value
from nbtrack.record.notebook import FoundRecord, records_in_notebook

__all__ = ["FoundRecord", "NotebookError", "format_table", "main", "records_in_notebook"]

_KEY_PARAMS = 3
_KEY_METRICS = 3
# Columns that give up width first when the terminal is narrow, and how far they may shrink.
_MIN_WIDTHS = {"cell": 6, "run": 10, "status": 8, "params": 10, "metrics": 14}


# --------------------------------------------------------------------------------------------
# The table.


def _fmt(value: object) -> str:
    """A value as the record's own views write it (``fmt_value``), with a terminal's "-" for
    none; text that is not a number is kept as it is."""
    if value is None:
        return "-"
    if isinstance(value, int | float) or value in ("NaN", "Infinity", "-Infinity"):
        return fmt_value(value)
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
    # No column needs more than the whole line: a name of a million characters (a record from
    # anyone) then costs as many passes below as an ordinary long one.
    fitted = {column: min(width, total) for column, width in widths.items()}
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


def main(
    notebook_path: str,
    out: TextIO | None = None,
    err: TextIO | None = None,
    *,
    run: str | None = None,
    as_json: bool = False,
) -> int:
    """Print the runs recorded in a notebook (the ``nbtrack show`` command): a table, or with
    ``run`` (a run's name or id, or the start of its id) that run in detail; ``as_json`` prints
    JSON instead (the records without their curves).

    Returns 0 when at least one record could be read (and ``run`` was found), 1 when the file
    is not a readable notebook, holds no readable record, or has no such run; problems go to
    ``err`` (stderr), one line each.
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    try:
        found = records_in_notebook(notebook_path)
    except NotebookError as exc:
        print(f"nbtrack show: {_printable(str(exc))}", file=err)
        return 1
    if not found:
        print(
            f"nbtrack show: {_printable(notebook_path)}: no nbtrack runs recorded in this "
            "notebook. Records are written when a `%%track` cell ends; was the notebook saved "
            "after running it?",
            file=err,
        )
        return 1
    for f in found:
        if f.problem:
            print(f"nbtrack show: cell {f.cell_index}: {_printable(f.problem)}", file=err)
    if run is not None:
        chosen = _find_run(found, run)
        if chosen is None:
            names = ", ".join(sorted({_printable(f.record["run"]["name"]) for f in found
                                      if f.record is not None})) or "none"  # fmt: skip
            print(f"nbtrack show: no run named {run!r} or with that id (runs: {names})", file=err)
            return 1
        text = json.dumps(_as_json(chosen), indent=2) if as_json else format_run(chosen)
        print(text, file=out)
        return 0
    if as_json:
        print(json.dumps([_as_json(f) for f in found], indent=2), file=out)
    else:
        width = shutil.get_terminal_size(fallback=(100, 24)).columns
        print(format_table(found, width), file=out)
    return 0 if any(f.record is not None for f in found) else 1


def _find_run(found: Sequence[FoundRecord], key: str) -> FoundRecord | None:
    """The run whose id, id prefix (6 characters or more) or name is ``key``; for a name
    several runs share, the last one in the notebook."""
    readable = [f for f in found if f.record is not None]
    for f in readable:
        if f.record is not None and f.record["run"]["id"] == key:
            return f
    by_name = [f for f in readable if f.record is not None and f.record["run"]["name"] == key]
    if by_name:
        return by_name[-1]
    prefixed = [f for f in readable if f.record is not None and len(key) >= 6
                and (f.record["run"]["id"] or "").startswith(key)]  # fmt: skip
    return prefixed[-1] if len(prefixed) == 1 else None


def _as_json(found: FoundRecord) -> dict[str, Any]:
    """A record for scripts: everything but its curves and chart layout."""
    entry: dict[str, Any] = {"cell_index": found.cell_index, "cell_id": found.cell_id}
    if found.record is None:
        entry["problem"] = found.problem
        return entry
    record = {k: v for k, v in found.record.items() if k not in ("panels", "panel_x")}
    record["metrics"] = {
        name: {k: v for k, v in metric.items() if k != "curve"}
        for name, metric in found.record["metrics"].items()
    }
    entry["record"] = record
    return entry


def format_run(found: FoundRecord) -> str:
    """One run in detail: status, where it ran, links, every param, and each metric's last and
    best value (as the record holds them: 7 significant digits)."""
    from nbtrack.record.format import fmt_step, headline, stop_line, sync_line

    record = found.record or {}
    run = record["run"]
    lines = [f"run {run['name']!r}: {headline(record)}"]
    cell = f"{found.cell_index}" + (f" ({found.cell_id})" if found.cell_id else "")
    facts = [
        ("id", run.get("id")),
        ("experiment", _experiment(run)),
        ("cell", cell),
        ("MLflow", record.get("ui_url")),
        ("tracking", record.get("tracking_uri")),
    ]
    lines += [f"  {label:<11}{value}" for label, value in facts if value]
    lines += [f"  {extra}" for extra in (stop_line(record), sync_line(record)) if extra]
    params = record["params"]
    if params:
        omitted = record.get("params_omitted") or 0
        lines.append(f"params ({len(params) + omitted}{', some only in MLflow' * bool(omitted)}):")
        width = min(32, max(len(k) for k in params))
        lines += [f"  {k:<{width}}  {v}" for k, v in params.items()]
    metrics = record["metrics"]
    if metrics:
        omitted = record.get("metrics_omitted") or 0
        lines.append(f"metrics ({len(metrics) + omitted}):")
        width = min(32, max(len(k) for k in metrics))
        lines.append(f"  {'':<{width}}  {'last':>16}  {'best':>16}  {'goal':>4}  {'points':>8}")
        for name, m in metrics.items():
            last = (
                f"{_full(m['last'])} @{fmt_step(m['last_step'])}" if m["last"] is not None else "-"
            )
            best = (
                f"{_full(m['best'])} @{fmt_step(m['best_step'])}" if m["best"] is not None else "-"
            )
            count = f"{m['count']:,}" if m["count"] is not None else "-"
            lines.append(f"  {name:<{width}}  {last:>16}  {best:>16}  {m['goal'] or '-':>4}  "
                         f"{count:>8}")  # fmt: skip
        if omitted:
            lines.append(f"  ... and {omitted:,} more metrics, in MLflow only")
    return "\n".join(_printable_line(line) for line in lines)


def _experiment(run: Mapping[str, Any]) -> str | None:
    name, number = run.get("experiment_name"), run.get("experiment_id")
    if name and number:
        return f"{name} ({number})"
    return name or number


def _full(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.7g}"
    return _fmt(value)


def _printable_line(text: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text)
