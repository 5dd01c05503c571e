"""The core as a kernel sees it: MLflow stays out of the kernel unless the cell uses it, the
cell does not wait for the upload where a person watches, settings never break a cell, and
two kernels creating one experiment at once share it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from helpers.kernels import RECORD, Kernel, execute, notebook, records_of, text_of

# Each test that uses `store` runs against the embedded SQLite default and the team server.
STORES = ("sqlite", "server")


def _runs(client: Any, experiment: str) -> list[Any]:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"experiment {experiment!r} was not created"
    return list(client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"]))


def test_mlflow_imported_inside_the_cell_joins_the_tracked_run(store: str, client: Any) -> None:
    path = notebook(
        "import nbtrack, sys\nprint('before:', 'mlflow' in sys.modules)",
        "%%track -e joined\n"
        "nbtrack.log(loss=1.0)\n"
        "import mlflow\n"
        "mlflow.log_metric('direct', 2.0)\n"
        "mlflow.log_param('via_mlflow', 'yes')\n"
        "print('same run:', mlflow.active_run().info.run_id == nbtrack.active_run().run_id)",
        "print('after:', mlflow.active_run())\nnbtrack.wait(60)",
    )
    nb = execute(path)
    assert "before: False" in text_of(nb.cells[0])
    assert "same run: True" in text_of(nb.cells[1])
    assert "after: None" in text_of(nb.cells[2])
    (run,) = _runs(client, "joined")  # one run: MLflow's calls did not start a second one
    assert run.data.metrics == {"loss": 1.0, "direct": 2.0}
    assert run.data.params["via_mlflow"] == "yes"
    assert run.info.status == "FINISHED"


def test_mlflow_start_and_end_run_inside_the_cell_neither_end_nor_replace_the_tracked_run(
    store: str, client: Any
) -> None:
    # MLflow's own idiom, `with mlflow.start_run():`, raised "Run ... is already active" in a
    # tracked cell: the collision nbtrack promises away. It now opens the tracked run (its
    # name and tags apply to it). Code that ends "its" run (MLflow's examples, a framework's
    # logger) ended the tracked run in MLflow's eyes: the next MLflow call started a second
    # run, in the Default experiment, which then became the parent of every later tracked run.
    path = notebook(
        "import nbtrack",
        "%%track -e ended\n"
        "import mlflow\n"
        "with mlflow.start_run(run_name='mine', tags={'team': 'vision'}) as run:\n"
        "    mlflow.log_metric('a', 1.0)\n"
        "    print('same run:', run.info.run_id == nbtrack.active_run().run_id)\n"
        "mlflow.end_run()\n"
        "mlflow.log_metric('b', 2.0)\n"
        "print('still active:', mlflow.active_run().info.run_id == nbtrack.active_run().run_id)",
        "%%track -e ended\n"
        "nbtrack.log(loss=1.0)\n"
        "with mlflow.start_run(run_name='child', nested=True):\n"
        "    mlflow.log_metric('c', 3.0)\n"
        "print('back:', mlflow.active_run().info.run_id == nbtrack.active_run().run_id)\n"
        "try:\n"
        "    mlflow.start_run(experiment_id='0')\n"
        "except Exception as error:\n"
        "    print('refused:', error)",
        "nbtrack.wait(60)",
    )
    nb = execute(path)
    assert "same run: True" in text_of(nb.cells[1])
    assert "still active: True" in text_of(nb.cells[1])
    (record,) = records_of(nb.cells[1])
    assert record["run"]["name"] == "mine"
    assert "back: True" in text_of(nb.cells[2])  # leaving the child's block
    # Another experiment cannot be opened as a second top-level run: the error says how.
    assert "refused:" in text_of(nb.cells[2])
    assert "%%track -e" in text_of(nb.cells[2])
    first, second, child = _runs(client, "ended")
    assert first.data.metrics == {"a": 1.0, "b": 2.0}
    assert first.data.tags["team"] == "vision"
    assert first.info.run_name == "mine"
    assert first.info.status == "FINISHED"
    assert second.info.status == "FINISHED"
    assert "mlflow.parentRunId" not in second.data.tags
    # nested=True: a child run of the tracked one, as MLflow users expect.
    assert child.info.run_name == "child"
    assert child.data.tags["mlflow.parentRunId"] == second.info.run_id
    assert child.data.metrics == {"c": 3.0}
    assert child.info.status == "FINISHED"
    default = client.get_experiment_by_name("Default")
    assert default is None or client.search_runs([default.experiment_id]) == []


def test_a_tracked_cell_leaves_mlflow_out_of_the_kernel(store: str, client: Any) -> None:
    path = notebook(
        "%load_ext nbtrack",
        "%%track -e light\nnbtrack.log({'train/loss': 0.5})",
        "import sys\nprint(sorted(m for m in ('mlflow', 'plotly', 'torch') if m in sys.modules))",
    )
    nb = execute(path)
    assert text_of(nb.cells[2]).strip() == "[]"
    (run,) = _runs(client, "light")
    assert run.data.metrics == {"train/loss": 0.5}


def test_where_a_person_watches_the_cell_returns_at_once_and_the_record_updates_itself(
    store: str, client: Any, tmp_path: Path
) -> None:
    kernel = Kernel(tmp_path, env={"NBTRACK_LIVE_PLOT": "1"})  # as under JupyterLab
    try:
        kernel.run("import nbtrack")
        kernel.run("%%track -e warm\nnbtrack.log(x=1.0)")  # the sync process is up afterwards
        kernel.run("nbtrack.wait(60)")
        msg_id = kernel.submit(
            "%%track -e watched\nfor i in range(20_000):\n    nbtrack.log(loss=1.0 / (i + 1))"
        )
        started = time.monotonic()
        reply = kernel.wait_reply(msg_id)
        assert reply["status"] == "ok"
        outputs = kernel.outputs(msg_id)
        final = [o for o in outputs if RECORD in o.get("data", {})][-1]
        display_id = final["transient"]["display_id"]
        assert final["data"][RECORD]["run"]["status"] == "FINISHED"
        # Later, outside the cell, the same display is updated with the stored run.
        deadline = started + 120
        synced = None
        last_sync: Any = final["data"][RECORD]["sync"]
        while synced is None and time.monotonic() < deadline:
            for msg in kernel._iopub(1.0):
                content = msg["content"]
                if (
                    msg["msg_type"] == "update_display_data"
                    and content.get("transient", {}).get("display_id") == display_id
                ):
                    last_sync = content["data"][RECORD]["sync"]
                    if last_sync["state"] == "synced":
                        synced = content["data"][RECORD]
                        break
        logs = [p.read_text()[-3000:] for p in (tmp_path / "spool").glob("*/worker.log")]
        assert synced is not None, f"never stored; last said {last_sync}; sync logs: {logs}"
        assert synced["run"]["id"]
        assert synced["metrics"]["loss"]["count"] == 20_000
    finally:
        kernel.shutdown()
    (run,) = _runs(client, "watched")
    assert run.info.run_id == synced["run"]["id"]
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 20_000


def test_headless_the_saved_notebook_ends_with_final_records(store: str) -> None:
    path = notebook(
        "import nbtrack",
        "%%track -e headless\nfor i in range(30_000):\n    nbtrack.log(loss=float(i))",
    )
    nb = execute(path)  # no nbtrack.wait(): the last cell is the tracked one
    (record,) = records_of(nb.cells[1])
    assert record["run"]["status"] == "FINISHED"
    assert record["sync"] == {"state": "synced", "pending_points": 0}
    assert record["run"]["id"]


def test_bad_settings_warn_once_and_break_nothing(
    store: str, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NBTRACK_END_WAIT", "abc")
    monkeypatch.setenv("NBTRACK_SYNC_NICE", "very")
    monkeypatch.setenv("NBTRACK_SYNC_CPU_SHARE", "-3")
    path = notebook(
        "import nbtrack",
        "%%track -e settings\nnbtrack.log(loss=1.0)",
        "%%track -e settings\nnbtrack.log(loss=2.0)",
        "print('stored:', nbtrack.wait(60))",
    )
    nb = execute(path)
    shown = "".join(text_of(cell) for cell in nb.cells)
    assert shown.count("NBTRACK_END_WAIT='abc' is not a number of seconds from 0 to 86400") == 1
    assert "using the default" in shown
    assert records_of(nb.cells[1])[0]["run"]["status"] == "FINISHED"
    assert "stored: True" in text_of(nb.cells[3])
    # The sync process read the same bad values, warned in its log and went on uploading.
    runs = _runs(client, "settings")
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]


def test_active_run_is_a_read_only_view(store: str) -> None:
    path = notebook(
        "import nbtrack",
        "%%track -e view -n viewed -p note=x\n"
        "lr = 0.1\n"
        "info = nbtrack.active_run()\n"
        "print(info.run_name, info.experiment_name, info.status, dict(info.params))\n"
        "import os\n"
        "print('id:', bool(info.run_id), info.tracking_uri == os.environ['MLFLOW_TRACKING_URI'])\n"
        'for attempt in (\'info.run_name = "other"\', \'info.params["lr"] = "2"\'):\n'
        "    try:\n"
        "        exec(attempt)\n"
        "    except (AttributeError, TypeError) as error:\n"
        "        print('refused:', type(error).__name__)",
        "print(nbtrack.active_run(), info.status)",
    )
    nb = execute(path)
    out = text_of(nb.cells[1])
    assert "viewed view RUNNING {'lr': '0.1', 'note': 'x'}" in out
    assert "id: True True" in out
    assert out.count("refused:") == 2
    assert text_of(nb.cells[2]).strip() == "None FINISHED"


def test_two_kernels_creating_one_experiment_at_once_share_it(
    store: str, client: Any, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    cell = (
        "%%track -e raced -n {name}\n"
        "import time, pathlib\n"
        f"while not pathlib.Path({str(go)!r}).exists():\n"
        "    time.sleep(0.001)\n"
        "nbtrack.log(loss=1.0)"
    )
    kernels = [Kernel(tmp_path) for _ in range(2)]
    try:
        for kernel in kernels:
            kernel.run("import nbtrack")
        ids = [k.submit(cell.format(name=f"k{i}")) for i, k in enumerate(kernels)]
        time.sleep(1.0)
        go.touch()
        for kernel, msg_id in zip(kernels, ids, strict=True):
            assert kernel.wait_reply(msg_id)["status"] == "ok"
            kernel.run("nbtrack.wait(120)")
    finally:
        for kernel in kernels:
            kernel.shutdown()
    experiments = [e for e in client.search_experiments() if e.name == "raced"]
    assert len(experiments) == 1
    runs = _runs(client, "raced")
    assert sorted(r.info.run_name for r in runs) == ["k0", "k1"]
    assert {r.info.experiment_id for r in runs} == {experiments[0].experiment_id}
    assert experiments[0].experiment_id not in ("None", "")
    assert experiments[0].tags["mlflow.experimentKind"] == "custom_model_development"
    for run in runs:
        assert run.info.status == "FINISHED"
        assert client.get_metric_history(run.info.run_id, "loss")[0].value == 1.0
