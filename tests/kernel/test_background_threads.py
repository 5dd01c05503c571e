"""A background thread that outlives its tracked cell, in a real kernel: its points go to the
run it was started in, never to the next one. nbtrack's own threads import nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers.kernels import Kernel, execute, notebook, output_text, text_of

pytestmark = pytest.mark.kernel


# One step of a monitor loop (a thread's or a task's) that logs, counting errors rather than
# dying of one.
_MONITOR_STEP = (
    "        try:\n"
    "            nbtrack.log(gpu=-1.0)\n"
    "            nbtrack.log(loss=-1.0)\n"
    "        except Exception as error:\n"
    "            errors.append(error)\n"
    "        count[0] += 1\n"
)


def _values(client: Any, run_id: str, key: str) -> list[float]:
    return [m.value for m in client.get_metric_history(run_id, key)]


def _assert_each_run_has_only_its_own(client: Any, experiment: str) -> None:
    """Run A (50 points of loss 1.0) also has what its thread or task logged while A ran (gpu,
    and loss -1.0); run B (50 points of loss 2.0) has nothing of it."""
    exp = client.get_experiment_by_name(experiment)
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    a, b = runs["A"].info.run_id, runs["B"].info.run_id
    assert {runs["A"].info.status, runs["B"].info.status} == {"FINISHED"}
    a_loss = _values(client, a, "loss")
    assert a_loss.count(1.0) == 50
    assert a_loss.count(-1.0) >= 1
    assert _values(client, a, "gpu")
    assert _values(client, b, "loss") == [2.0] * 50
    assert "gpu" not in runs["B"].data.metrics


def test_a_thread_logging_across_two_runs_feeds_only_its_own(store, client):
    path = notebook(
        "import nbtrack, threading, time",
        # Run A starts a thread that logs every 2 ms, as a monitor or a data loader would, and
        # counts errors rather than dying of one.
        "%%track -e threads -n A\n"
        "stop, errors, count = threading.Event(), [], [0]\n"
        "def monitor():\n"
        "    while not stop.is_set():\n"
        f"{_MONITOR_STEP}"
        "        time.sleep(0.002)\n"
        "thread = threading.Thread(target=monitor, name='monitor', daemon=True)\n"
        "thread.start()\n"
        "for _ in range(50):\n"
        "    nbtrack.log(loss=1.0)\n"
        "    time.sleep(0.002)",
        # Between the runs the thread goes on.
        "seen = count[0]\nwhile count[0] < seen + 20:\n    time.sleep(0.01)",
        "%%track -e threads -n B\n"
        "for _ in range(50):\n"
        "    nbtrack.log(loss=2.0)\n"
        "    time.sleep(0.002)",
        "stop.set()\nthread.join()\nprint('errors:', errors)\nassert nbtrack.wait(60)",
    )
    nb = execute(path)
    assert "errors: []" in text_of(nb.cells[4])
    warned = [
        text
        for cell in nb.cells
        for text in [text_of(cell)]
        if "'monitor' was started in the tracked cell of run 'A'" in text
    ]
    assert len(warned) == 1, warned

    _assert_each_run_has_only_its_own(client, "threads")


def test_an_asyncio_task_logging_across_two_runs_feeds_only_its_own(store, client):
    # A task runs in the kernel's own thread, so the thread rule cannot tell it from the next
    # cell's code: while run B awaited, the task's points landed in B (and between the runs its
    # calls raised inside the task). The kernel shows a task's output under the cell that
    # started it (ipykernel 7), which nbclient no longer listens to: warnings are kept here.
    path = notebook(
        "import nbtrack, asyncio, warnings\nshown = []\n"
        "warnings.showwarning = lambda message, *args, **kwargs: shown.append(str(message))",
        "%%track -e tasks -n A\n"
        "errors, count = [], [0]\n"
        "async def monitor():\n"
        "    while True:\n"
        f"{_MONITOR_STEP}"
        "        await asyncio.sleep(0.002)\n"
        "task = asyncio.ensure_future(monitor())\n"
        "for _ in range(50):\n"
        "    nbtrack.log(loss=1.0)\n"
        "    await asyncio.sleep(0.002)",
        "seen = count[0]\nwhile count[0] < seen + 20:\n    await asyncio.sleep(0.01)",
        "%%track -e tasks -n B\n"
        "for _ in range(50):\n"
        "    nbtrack.log(loss=2.0)\n"
        "    await asyncio.sleep(0.002)",
        "task.cancel()\nprint('errors:', errors)\nprint('warned:', shown)\nassert nbtrack.wait(60)",
    )
    nb = execute(path)
    assert "errors: []" in text_of(nb.cells[4])
    warned = text_of(nb.cells[4]).split("warned: ", 1)[1]
    assert warned.count("was started in the tracked cell of run 'A'") == 1, warned
    assert "asyncio task 'Task-" in warned
    assert "Cancel or await the task before its cell ends" in warned

    _assert_each_run_has_only_its_own(client, "tasks")


def test_nbtracks_own_threads_import_nothing(store: str, tmp_path: Path) -> None:
    # A module's first import in a background thread races the cell's own imports: importing
    # torch, pandas or MLflow imports numpy too, and when two threads import one package at
    # once CPython's import locks may hand one of them the half-made module ("cannot import
    # name ... most likely due to a circular import"), failing the user's cell (seen in CI: a
    # thread of nbtrack importing numpy while the cell imported MLflow). So everything nbtrack's
    # threads need is imported by the main thread first. The audit hook sees every first import
    # (a module not in sys.modules yet) and the thread that made it.
    kernel = Kernel(tmp_path, env={"NBTRACK_LIVE_PLOT": "1"})  # live view: its timer, its PNG
    try:
        reply, _ = kernel.run(
            "import sys, threading\n"
            "first_imports = set()\n"
            "def _hook(event, args):\n"
            "    thread = threading.current_thread().name\n"
            "    if event == 'import' and thread.startswith('nbtrack-'):\n"
            "        first_imports.add((thread, args[0]))\n"
            "sys.addaudithook(_hook)"
        )
        assert reply["status"] == "ok"
        for code in (
            "import nbtrack",  # loads the extension: its warm-up threads
            "%%track -e quiet-threads\n"
            "import time\n"
            "for i in range(300):\n"
            "    nbtrack.log(loss=1 / (i + 1))\n"
            "    time.sleep(0.005)",
            "assert nbtrack.wait(120)\nimport time\ntime.sleep(2)",  # the record's PNG, later
        ):
            reply, _ = kernel.run(code)
            assert reply["status"] == "ok", reply
        msg_id = kernel.submit("print(sorted(first_imports))")
        kernel.wait_reply(msg_id)
        assert output_text(kernel.outputs(msg_id)).strip() == "[]"
    finally:
        kernel.shutdown()
