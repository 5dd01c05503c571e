"""``nbtrack.log`` in the other processes of a tracked cell against the same call in the kernel.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_ranks.py [--calls 200000]

One ``%%track`` cell in a real IPython shell (``_common.Shell``) times a tight loop of
``nbtrack.log(loss=..., acc=..., lr=...)`` with floats, the way ``bench_log.py`` does, in four
places: the kernel itself; a forked child (``multiprocessing``'s fork context, as DataLoader
workers are); a spawned child (as ``torch.multiprocessing.spawn`` starts ranks) with no rank;
and a spawned child that is torch.distributed rank 1 (``RANK=1``, as ``torchrun`` sets it).
Each figure is the median of five chunks, in µs per call; the first call of a child (which
opens its journal and starts its sender thread) is made before timing, as the kernel's first
call of a cell is. Afterwards every point is read back from MLflow. About a minute.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Shell, isolate, table

WORKER = '''
import os, statistics, time
import nbtrack


def timed_calls(calls, rank=None):
    """Median µs per nbtrack.log call over five chunks of ``calls`` // 5."""
    if rank is not None:
        os.environ["RANK"] = str(rank)
    nbtrack.log(loss=0.0, acc=0.0, lr=0.0)  # opens this process's journal, untimed
    chunk = calls // 5
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for i in range(chunk):
            nbtrack.log(loss=1.0, acc=0.5, lr=0.001)
        times.append((time.perf_counter() - start) / chunk * 1e6)
    return statistics.median(times)


def in_child(calls, rank, queue):
    queue.put(timed_calls(calls, rank))
'''

CELL = """
import multiprocessing
from bench_ranks_worker import in_child, timed_calls
_results = {{"kernel": timed_calls({calls})}}
for _name, _method, _rank in (("forked child", "fork", None), ("spawned child", "spawn", None),
                             ("spawned rank 1", "spawn", 1)):
    _context = multiprocessing.get_context(_method)
    _queue = _context.Queue()
    _child = _context.Process(target=in_child, args=({calls}, _rank, _queue))
    _child.start()
    _results[_name] = _queue.get()
    _child.join()
_run_id = nbtrack.active_run().run_id
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=200_000, help="timed calls per place")
    args = parser.parse_args()
    folder = isolate("ranks")
    (folder / "bench_ranks_worker.py").write_text(textwrap.dedent(WORKER))
    sys.path.insert(0, str(folder))
    shell = Shell()
    shell.run(f"import sys\nsys.path.insert(0, {str(folder)!r})")
    shell.run(CELL.format(calls=args.calls), track="-e bench-ranks -n ranks")
    import mlflow

    import nbtrack

    nbtrack.wait()
    results = shell["_results"]
    client = mlflow.MlflowClient()
    run = client.get_run(shell["_run_id"])
    expected = args.calls // 5 * 5 + 1
    for key in ("loss", "process1/loss", "process2/loss", "rank1/loss"):
        stored = len(client.get_metric_history(run.info.run_id, key))
        if stored != expected:
            msg = f"{key}: {stored} points stored, {expected} logged"
            raise RuntimeError(msg)
    kernel = results["kernel"]
    rows = [[where, f"{us:.3f}", f"{us / kernel:.2f}x"] for where, us in results.items()]
    print(table(["where nbtrack.log runs", "µs per call (3 metrics)", "x the kernel"], rows))
    print(f"\nevery point of the four places stored once ({expected:,} steps each)")


if __name__ == "__main__":
    main()
