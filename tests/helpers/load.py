"""Several real kernels tracking at once, for the load and fault tests: started together, let
go at the same moment, each read back point by point."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from helpers.kernels import Kernel, output_text

KEYS = ("loss", "acc", "lr")

# A training loop's logging, started when the file ``go`` appears (so that every kernel logs at
# the same moment); ``pause`` seconds of sleep every 1000 steps spread it out in time.
CELL = """%%track -e {experiment} -n {name}
import pathlib, time
while not pathlib.Path({go!r}).exists():
    time.sleep(0.01)
for step in range({steps}):
    nbtrack.log(loss=1.0 / (step + 1), acc=step / {steps}, lr=0.001)
    if step % 1000 == 999:
        time.sleep({pause})
"""


@contextmanager
def kernels(folder: Path, count: int, env: dict[str, str] | None = None) -> Iterator[list[Kernel]]:
    started: list[Kernel] = []
    try:
        for _ in range(count):
            kernel = Kernel(folder, env=env)
            started.append(kernel)
            reply, _ = kernel.run("import nbtrack")
            assert reply["status"] == "ok"
        yield started
    finally:
        for kernel in started:
            kernel.shutdown()


def track_at_once(
    started: list[Kernel], folder: Path, experiment: str, steps: int, pause: float = 0.0
) -> list[str]:
    """Run the logging cell in every kernel at the same moment; return each cell's outputs as
    plain text (after its end, not waiting for the upload)."""
    go = folder / f"go-{experiment}"
    ids = [
        kernel.submit(
            CELL.format(experiment=experiment, name=f"k{i}", go=str(go), steps=steps, pause=pause)
        )
        for i, kernel in enumerate(started)
    ]
    time.sleep(0.5)
    go.touch()
    shown = []
    for kernel, msg_id in zip(started, ids, strict=True):
        reply = kernel.wait_reply(msg_id, timeout=600)
        assert reply["status"] == "ok", reply
        shown.append(output_text(kernel.outputs(msg_id)))
    return shown


def wait_stored(started: list[Kernel], timeout: float = 600) -> list[str]:
    """``nbtrack.wait()`` in every kernel; each must say everything is stored."""
    shown = []
    for kernel in started:
        _, outputs = kernel.run(f"print('stored:', nbtrack.wait({timeout}))", timeout=timeout + 60)
        text = output_text(outputs)
        assert "stored: True" in text, text
        shown.append(text)
    return shown


def assert_every_point_once(client: Any, experiment: str, count: int, steps: int) -> None:
    """``count`` runs named k0.., each FINISHED, each metric with every step exactly once."""
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    assert sorted(r.info.run_name for r in runs) == sorted(f"k{i}" for i in range(count))
    for run in runs:
        assert run.info.status == "FINISHED", run.info.run_name
    # Each history is read whole, as before; a few at a time, since most of a read is the
    # store's work (the server's workers, PostgreSQL) rather than this process's.
    pairs = [(run, key) for run in runs for key in KEYS]
    with ThreadPoolExecutor(4) as pool:
        histories = pool.map(lambda p: client.get_metric_history(p[0].info.run_id, p[1]), pairs)
        for (run, key), history in zip(pairs, histories, strict=True):
            got = sorted(m.step for m in history)
            assert got == list(range(steps)), (run.info.run_name, key, len(got))


def worker_logs(folder: Path) -> str:
    return json.dumps([p.read_text() for p in folder.glob("spool/*/worker.log")])
