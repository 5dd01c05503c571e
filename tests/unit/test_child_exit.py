"""A process that a tracked cell started (a torch.distributed rank, a worker) and that logged:
what nbtrack leaves behind when it exits.

Its sender thread is stopped and joined before the interpreter shuts down: a daemon thread
still running then is ended wherever it is (``pthread_exit``, before Python 3.14), which inside
a C++ extension's GIL-released section is ``std::terminate`` (see ``_sender.stop_sender``).
Every point it logged is still in its journal, which ends with its ``end`` line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from nbtrack.journal.format import decode_line, unpack

CHILD = """
import atexit, threading
import nbtrack

# Registered before nbtrack's own exit hook (registered by the first log call), so it runs
# after it: what is still running when the interpreter starts shutting down.
atexit.register(lambda: print("THREADS", sorted(t.name for t in threading.enumerate())))
for i in range(1000):
    nbtrack.log(x=float(i))
"""


def test_a_child_that_logged_stops_its_sender_before_shutdown_and_keeps_every_point(
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700)
    # The kernel that owns the run is another process: this one logs as its child.
    (spool / "session.json").write_text(json.dumps({"kernel_pid": os.getppid()}))
    journal = spool / "run.jsonl"
    journal.write_text("")
    env = {**os.environ, "NBTRACK_RUN_JOURNAL": str(journal)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    threads = next(line for line in done.stdout.splitlines() if line.startswith("THREADS"))
    assert "nbtrack-sender" not in threads, threads
    (child,) = spool.glob("*.child")
    lines = [decode_line(line) for line in child.read_bytes().splitlines()]
    first = lines[0]
    assert first is not None
    assert (first["t"], first["name"]) == ("child", "process1")
    assert lines[-1] == {"t": "end"}
    values = [
        value
        for line in lines
        if line is not None and line["t"] == "b"
        for value in unpack(line["m"]["process1/x"][1], "d")
    ]
    assert values == [float(i) for i in range(1000)]
