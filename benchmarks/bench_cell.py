"""What tracking adds to a cell: its start and its end, first cell and later ones.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_cell.py [--repeats 7] [--first-repeats 3]

A cell that logs a few points runs tracked (``%%track``) and untracked (the same body, with a
no-op in place of ``nbtrack.log``); the difference is what tracking adds, split into the start
(from the cell's start to its body's first line) and the end (from its body's last line until
the cell returns). Three ways a cell can end:

- *live view*: ``NBTRACK_LIVE_PLOT=1``, as in JupyterLab: the record is drawn under the cell
  from the start, and the end waits neither for the upload (the record updates itself) nor for
  the record's PNG (a background thread adds it in place; timed apart, "after the cell");
- *no wait*: ``NBTRACK_END_WAIT=0`` without the live view;
- *headless default*: under nbclient, papermill or nbconvert nobody watches, so the end waits
  for the upload (up to 60 s), so that the saved notebook has final records.

1. The first tracked cell in a fresh kernel, right after ``%load_ext nbtrack``: each repetition
   in a fresh subprocess with a fresh store. The start-up is timed piece by piece (the
   ``%load_ext``, and inside the cell's begin and end), and apart from the cell, the background
   work of the sync process until the run exists in MLflow (importing MLflow, creating the
   SQLite store, the experiment and the run), also measured on its own.
2. Later cells in one kernel: a cell logging 5 points, and one whose loop logs 3,000 steps of
   three metrics (so nearly all of them are still in memory when its body ends).

Targets: a later cell adds under 50 ms at start and end together (live view, no wait); the
first under 1.5 s. About 2 minutes with the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Shell, isolate, median, table

MODES: dict[str, dict[str, str | None]] = {
    "live view": {"NBTRACK_LIVE_PLOT": "1", "NBTRACK_END_WAIT": None},
    "no wait": {"NBTRACK_LIVE_PLOT": "0", "NBTRACK_END_WAIT": "0"},
    "headless default": {"NBTRACK_LIVE_PLOT": "0", "NBTRACK_END_WAIT": None},
}

BODIES = {
    "5 points": "for _i in range(5):\n    _log(loss=_o + 1.0 / (_i + 1), acc=0.5)",
    "3,000-step loop": (
        "for _i in range(3000):\n    _log(loss=_o + 1.0 / (_i + 1), acc=0.5, lr=0.001)"
    ),
}

# ``_o``: every cell logs other values, so no two records draw the same chart (a chart drawn
# before is not rasterised again, which repeating one cell would measure instead).
CELL = """_t_body = _perf_counter()
_log = nbtrack.log if nbtrack.active_run() is not None else _no_log
_o = _perf_counter() % 1.0
{body}
_t_end = _perf_counter()"""

SETUP_CELL = """
from time import perf_counter as _perf_counter

def _no_log(*args, **kwargs):
    pass
"""

# The sync process's work before a new run exists, on its own (a fresh store each time).
_STORE_WORK = """
import json, sys, time
start = time.perf_counter()
import mlflow
imported = time.perf_counter()
from nbtrack import tracking
client = tracking.make_client(sys.argv[1])
opened = time.perf_counter()
experiment = tracking.experiment_id(client, "bench-cell")
tracking.create_run(client, experiment, run_name="r", start_time=0, tags={})
created = time.perf_counter()
print(json.dumps({"import mlflow": imported - start, "create the SQLite store": opened - imported,
                  "create the experiment and the run": created - opened}))
"""


class Pieces:
    """Times spent in parts of nbtrack's cell lifecycle, by wrapping them (main thread only:
    the sender thread calls some of the same functions)."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        self.tracked: Any = None

    def wrap(self, owner: Any, attribute: str, label: str, *, any_thread: bool = False) -> None:
        original: Callable[..., Any] = getattr(owner, attribute)
        spent = self.spent

        def timed(*args: Any, **kwargs: Any) -> Any:
            if not any_thread and threading.current_thread() is not threading.main_thread():
                return original(*args, **kwargs)
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - start

        setattr(owner, attribute, timed)

    def install(self) -> None:
        from nbtrack import _sender
        from nbtrack.journal.writer import Journal
        from nbtrack.kernel import cell
        from nbtrack.kernel.code import CodeRecorder
        from nbtrack.view.live import LiveView

        begin = cell.begin

        def keep(*args: Any, **kwargs: Any) -> Any:
            self.tracked = begin(*args, **kwargs)
            return self.tracked

        cell.begin = keep
        self.wrap(cell, "begin", "begin: total")
        self.wrap(cell, "new_run", "begin: run data (params from the cell's code, tags)")
        self.wrap(cell, "session_for", "begin: session folder + sync process spawn")
        self.wrap(Journal, "__init__", "begin: journal file + start line")
        self.wrap(LiveView, "__init__", "begin: output slot (notice, or the record drawn)")
        self.wrap(CodeRecorder, "stage", "begin: code staging (cell + history, redacted)")
        self.wrap(_sender, "ensure_sender", "begin: sender thread")
        self.wrap(cell, "follow_mlflow", "begin: MLflow import watch")
        self.wrap(cell, "end", "end: total")
        self.wrap(cell, "environment_files", "end: environment files (background read)")
        self.wrap(_sender, "drain", "end: final drain into the journal")
        self.wrap(Journal, "end", "end: journal end line")
        self.wrap(cell, "wait_synced", "end: waiting for the upload")
        self.wrap(LiveView, "finish", "end: record drawn")
        self.wrap(
            LiveView, "_add_png", "after the cell: its record's PNG, in place", any_thread=True
        )

    def take(self) -> dict[str, float]:
        taken = dict(self.spent)
        self.spent.clear()
        return taken


def _set_mode(mode: str) -> None:
    for name, value in MODES[mode].items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _timed_cell(shell: Shell, body: str, track: str | None) -> tuple[float, float]:
    """Run the cell; (start, end): seconds before its body's first line and after its last."""
    started = time.perf_counter()
    shell.run(CELL.format(body=body), track=track)
    ended = time.perf_counter()
    return shell["_t_body"] - started, ended - shell["_t_end"]


def _run_exists_after(pieces: Pieces, since: float, timeout: float = 60.0) -> float | None:
    """Seconds from ``since`` until the sync process created the last tracked run in MLflow."""
    journal = pieces.tracked.journal
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if journal.progress().run_id is not None:
            return time.perf_counter() - since
        time.sleep(0.005)
    return None


def child_first(mode: str) -> None:
    """One fresh kernel: ``%load_ext``, an untracked cell, then the first tracked cell."""
    isolate("cell-first")
    _set_mode(mode)
    shell = Shell()
    pieces = Pieces()
    pieces.install()
    shell.run(SETUP_CELL)
    body = BODIES["5 points"]
    plain = _timed_cell(shell, body, None)
    started = time.perf_counter()
    tracked = _timed_cell(shell, body, "-e bench-cell -n first")
    spent = pieces.take()
    # Headless, the cell's end waited for the upload: the run existed before it returned.
    exists = None if mode == "headless default" else _run_exists_after(pieces, started)
    import nbtrack

    nbtrack.wait(120)
    stored = time.perf_counter() - started
    print(
        json.dumps(
            {
                "load_ext": shell.load_ext_s,
                "start": tracked[0] - plain[0],
                "end": tracked[1] - plain[1],
                "pieces": spent,
                "run exists": exists,
                "all stored": stored,
            }
        )
    )


def _child(args: list[str]) -> dict[str, Any]:
    output = subprocess.run(  # noqa: S603 - this very script
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    if output.returncode != 0:
        msg = f"child {args} failed:\n{output.stderr[-3000:]}"
        raise RuntimeError(msg)
    result: dict[str, Any] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e3:,.1f}"


def first_cells(repeats: int, folder: Path) -> None:
    print(f"1. The first tracked cell in a fresh kernel ({repeats} fresh processes per mode), ms:")
    results = {mode: [_child(["--child", mode]) for _ in range(repeats)] for mode in MODES}
    store_work = []
    for index in range(repeats):
        uri = f"sqlite:///{folder / f'store-{index}.db'}"
        output = subprocess.run(  # noqa: S603 - our own snippet
            [sys.executable, "-c", _STORE_WORK, uri], capture_output=True, text=True, check=True
        )
        store_work.append(json.loads(output.stdout.strip().splitlines()[-1]))

    def med(mode: str, pick: Callable[[dict[str, Any]], float | None]) -> float | None:
        values = [v for v in (pick(r) for r in results[mode]) if v is not None]
        return median(values) if values else None

    rows = [
        ["%load_ext nbtrack", *(_ms(med(m, lambda r: r["load_ext"])) for m in MODES)],
        ["start added (cell start to body)", *(_ms(med(m, lambda r: r["start"])) for m in MODES)],
    ]
    labels = sorted({label for rs in results.values() for r in rs for label in r["pieces"]})
    rows += [
        [
            f"  {label}",
            *(_ms(med(m, lambda r, label=label: r["pieces"].get(label, 0.0))) for m in MODES),
        ]
        for label in labels
        if label.startswith("begin")
    ]
    rows.append(
        ["end added (body to cell return)", *(_ms(med(m, lambda r: r["end"])) for m in MODES)]
    )
    rows += [
        [
            f"  {label}",
            *(_ms(med(m, lambda r, label=label: r["pieces"].get(label, 0.0))) for m in MODES),
        ]
        for label in labels
        if label.startswith("end")
    ]
    rows.append(
        [
            "tracking added to the first cell (start + end)",
            *(_ms(med(m, lambda r: r["start"] + r["end"])) for m in MODES),
        ]
    )
    rows.append(
        [
            "(background) run exists in MLflow, from cell start",
            *(_ms(med(m, lambda r: r["run exists"])) for m in MODES),
        ]
    )
    rows.append(
        [
            "(background) all stored, from cell start",
            *(_ms(med(m, lambda r: r["all stored"])) for m in MODES),
        ]
    )
    print()
    print(table(["first tracked cell, median", *MODES], rows))
    print("\nThe sync process's work before the run exists, on its own (a fresh store), ms:\n")
    keys = list(store_work[0])
    print(
        table(
            ["step", "median", "min", "max"],
            [
                [
                    key,
                    _ms(median([w[key] for w in store_work])),
                    _ms(min(w[key] for w in store_work)),
                    _ms(max(w[key] for w in store_work)),
                ]
                for key in keys
            ],
        )
    )
    start_end = med("live view", lambda r: r["start"] + r["end"])
    print(
        f"\nfirst cell, live view: {_ms(start_end)} ms added (target < 1,500 ms), plus "
        f"{_ms(med('live view', lambda r: r['load_ext']))} ms of %load_ext"
    )


def later_cells(repeats: int) -> None:
    import nbtrack

    shell = Shell()
    pieces = Pieces()
    pieces.install()
    shell.run(SETUP_CELL)
    # The first tracked cell (measured in 1.) is out of the way.
    _set_mode("no wait")
    shell.run(CELL.format(body=BODIES["5 points"]), track="-e bench-cell -n warm-up")
    nbtrack.wait(120)
    pieces.take()
    added: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    spent: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    for _ in range(repeats):
        for mode in MODES:
            _set_mode(mode)
            for body_name, body in BODIES.items():
                plain = _timed_cell(shell, body, None)
                tracked = _timed_cell(shell, body, "-e bench-cell -n later")
                added[mode, body_name].append((tracked[0] - plain[0], tracked[1] - plain[1]))
                # The next cell starts with nothing left to upload or draw.
                nbtrack.wait(120)
                for thread in threading.enumerate():
                    if thread.name == "nbtrack-record-png":
                        thread.join()
                spent[mode, body_name].append(pieces.take())
    print(f"\n2. Later tracked cells, tracked minus untracked ({repeats} of each), ms:\n")
    rows = []
    for (mode, body_name), pairs in added.items():
        start, end = median([p[0] for p in pairs]), median([p[1] for p in pairs])
        total = median([p[0] + p[1] for p in pairs])
        target = "< 50" if mode != "headless default" else "(waits for the upload)"
        rows.append([f"{mode}, {body_name}", _ms(start), _ms(end), _ms(total), target])
    print(table(["cell", "start", "end", "start + end", "target"], rows))
    print("\nWhere a later cell's time goes (median ms per piece):\n")
    cases = list(spent)
    labels = sorted({label for case in cases for s in spent[case] for label in s})
    print(
        table(
            ["piece", *(f"{m}, {b}" for m, b in cases)],
            [
                [label, *(_ms(median([s.get(label, 0.0) for s in spent[c]])) for c in cases)]
                for label in labels
            ],
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=7, help="later cells of each kind (7)")
    parser.add_argument(
        "--first-repeats", type=int, default=3, help="fresh processes per mode for 1. (3; 0: skip)"
    )
    parser.add_argument("--child", choices=list(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_first(args.child)
        return
    folder = isolate("cell")
    if args.first_repeats > 0:
        first_cells(args.first_repeats, folder)
    later_cells(args.repeats)


if __name__ == "__main__":
    main()
