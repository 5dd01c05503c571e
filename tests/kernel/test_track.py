"""%%track in a real kernel, read back through MLflow's own client."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from helpers.kernels import Kernel, execute, notebook, outputs_of, text_of

pytestmark = pytest.mark.kernel
# Each test that uses `store` runs against the embedded SQLite default and the team server.
STORES = ("sqlite", "server")


def _runs(client: Any, experiment: str) -> list[Any]:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"experiment {experiment!r} was not created"
    return list(client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"]))


def _history(client: Any, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]


def _artifact_text(client: Any, run_id: str, path: str) -> str:
    return Path(client.download_artifacts(run_id, path)).read_text()


def test_tracked_cell_becomes_finished_run_with_params_metrics_code_and_env(store, client):
    path = notebook(
        "%load_ext nbtrack",
        "%%track --name baseline --tag team=vision -t owner=ml\n"
        "lr = 3e-3\nepochs = 4\nmomentum = -1\narch = 'mlp'\nuse_bn = True\nseed = None\n"
        "sizes = (64, 32)\nopt = {'name': 'adam', 'betas': [0.9, 0.99]}\n"
        "lr_scaled = lr * 2\n"
        "for epoch in range(epochs):\n"
        "    nbtrack.log(loss=1.0 / (epoch + 1), acc=epoch / 10)\n"
        "nbtrack.log(val_acc=0.9, step=10)\n"
        "open('weights.bin', 'wb').write(bytes(range(256)) * 40)\n"
        "nbtrack.log_artifact('weights.bin', 'checkpoints')\n"
        "print('training done')\n"
        "import asyncio\nawait asyncio.sleep(0)\n"
        "epochs * 100",
        "print('still defined:', lr, epochs)\nnbtrack.wait(60)",
    )
    nb = execute(path)
    track, after = nb.cells[1], nb.cells[2]

    # The cell behaves as untracked: print output, last expression, namespace kept.
    assert "training done" in text_of(track)
    results = outputs_of(track, "execute_result")
    assert results, "the last expression was not displayed"
    assert results[0].data["text/plain"] == "400"
    assert "still defined: 0.003 4" in text_of(after)

    (run,) = _runs(client, "train")  # default experiment: the notebook's file name
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "baseline"
    assert run.data.params == {
        "lr": "0.003",
        "epochs": "4",
        "momentum": "-1",
        "arch": "mlp",
        "use_bn": "True",
        "seed": "None",
        "sizes": "(64, 32)",
        "opt": "{'name': 'adam', 'betas': [0.9, 0.99]}",
    }
    assert _history(client, run.info.run_id, "loss") == [(0, 1.0), (1, 0.5), (2, 1 / 3), (3, 0.25)]
    assert _history(client, run.info.run_id, "acc") == [(0, 0.0), (1, 0.1), (2, 0.2), (3, 0.3)]
    assert _history(client, run.info.run_id, "val_acc") == [(10, 0.9)]

    tags = run.data.tags
    assert tags["mlflow.source.name"] == str(path)
    assert tags["mlflow.source.type"] == "NOTEBOOK"
    assert tags["mlflow.runName"] == "baseline"
    assert tags["team"] == "vision"
    assert tags["owner"] == "ml"
    assert len(tags["nbtrack.code_hash"]) == 16

    cell_code = _artifact_text(client, run.info.run_id, "code/cell.py")
    assert cell_code.startswith("lr = 3e-3")
    assert "%%track" not in cell_code
    history = _artifact_text(client, run.info.run_id, "code/session_history.py")
    assert "%load_ext nbtrack" in history
    env = json.loads(_artifact_text(client, run.info.run_id, "environment/environment.json"))
    assert env["python"].count(".") == 2
    assert "mlflow" in env["packages"]
    requirements = _artifact_text(client, run.info.run_id, "environment/requirements.txt")
    assert "mlflow==" in requirements
    # A plain artifact comes back byte for byte (through the server's proxied storage too).
    weights = Path(client.download_artifacts(run.info.run_id, "checkpoints/weights.bin"))
    assert weights.read_bytes() == bytes(range(256)) * 40


def test_failed_cell_keeps_metrics_and_stops_run_all(store, client):
    path = notebook(
        "import nbtrack",
        "%%track -e failing\nfor i in range(5):\n    nbtrack.log(loss=float(i))\n"
        "raise ValueError('diverged at 5')",
        "print('this cell must not run')",
    )
    from nbclient.exceptions import CellExecutionError

    with pytest.raises(CellExecutionError, match="diverged at 5"):
        execute(path)
    nb = nbformat.read(path, as_version=4)
    errors = outputs_of(nb.cells[1], "error")
    assert errors
    assert errors[0].ename == "ValueError"
    assert not nb.cells[2].get("outputs")

    (run,) = _runs(client, "failing")
    # The kernel is gone (nbclient shut it down) and the sync process finished the upload.
    assert run.info.status == "FAILED"
    assert _history(client, run.info.run_id, "loss") == [(i, float(i)) for i in range(5)]
    assert "ValueError: diverged at 5" in run.data.tags["nbtrack.error"]
    traceback = _artifact_text(client, run.info.run_id, "error/traceback.txt")
    assert "raise ValueError('diverged at 5')" in traceback


def test_reruns_are_new_runs_also_after_failure_and_open_user_run(store, client):
    cell = "%%track -e again\nnbtrack.log(x=1.0)\nfail = False\nassert not fail"
    failing = "%%track -e again\nnbtrack.log(x=2.0)\n1 / 0"
    path = notebook(
        "import nbtrack, mlflow",
        cell,
        failing,
        cell,
        # A run the user opened by hand and never closed: ours nests instead of colliding.
        "outer = mlflow.start_run(run_name='manual')",
        cell,
        "mlflow.end_run()\nnbtrack.wait(60)",
    )
    execute(path, allow_errors=True)
    runs = _runs(client, "again")
    tracked = [r for r in runs if r.info.run_name != "manual"]
    assert [r.info.status for r in tracked] == ["FINISHED", "FAILED", "FINISHED", "FINISHED"]
    assert len({r.info.run_id for r in tracked}) == 4
    # Runs of one cell share its grouping tag.
    assert tracked[0].data.tags["nbtrack.code_hash"] == tracked[2].data.tags["nbtrack.code_hash"]
    # The hand-made run went to MLflow's Default experiment, as untracked MLflow code does.
    manual = next(r for r in client.search_runs(["0"]) if r.info.run_name == "manual")
    assert tracked[3].data.tags["mlflow.parentRunId"] == manual.info.run_id


def test_bad_options_and_bad_metrics_fail_clearly(store, client):
    path = notebook(
        "import nbtrack",
        "%%track --bogus\nnbtrack.log(x=1)",
        "%%track -e bad -t novalue\nnbtrack.log(x=1)",
        "%%track -e bad -p 'bad key!=1'\nnbtrack.log(x=1)",
        "%%track -e badmetric\nnbtrack.log(loss=0.5)\nnbtrack.log(loss='high')",
        "%%track -e nonfinite\nnbtrack.log(loss=float('nan'))\nnbtrack.log(loss=float('inf'))\n"
        "nbtrack.log(loss=-float('inf'))",
        "nbtrack.log(loss=1.0)",
        "nbtrack.wait(60)",
    )
    nb = execute(path, allow_errors=True)
    bogus, novalue, badkey, badmetric, _, outside = nb.cells[1:7]
    # IPython prints a UsageError as a one-line message (no traceback) and fails the cell.
    assert "UsageError: %%track: unrecognized arguments: --bogus" in text_of(bogus)
    assert "UsageError" in text_of(novalue)
    assert "'novalue'" in text_of(novalue)
    assert "UsageError" in text_of(badkey)
    assert "'bad key!'" in text_of(badkey)
    assert client.get_experiment_by_name("bad") is None  # bad options create nothing

    error = outputs_of(badmetric, "error")[0]
    assert error.ename == "TypeError"
    assert "'loss'" in error.evalue
    (run,) = _runs(client, "badmetric")
    assert run.info.status == "FAILED"
    assert _history(client, run.info.run_id, "loss") == [(0, 0.5)]

    (run,) = _runs(client, "nonfinite")
    assert run.info.status == "FINISHED"
    nan, high, low = (v for _, v in _history(client, run.info.run_id, "loss"))
    # MLflow's SQL stores keep NaN and clamp infinities to the largest finite float.
    assert math.isnan(nan)
    assert high >= sys.float_info.max
    assert low <= -sys.float_info.max

    error = outputs_of(outside, "error")[0]
    assert error.ename == "NoActiveRunError"
    assert "%%track" in error.evalue


def test_secrets_never_reach_params_artifacts_or_outputs(store, client):
    secret = "sk-live-ABCDEFGHIJKLMNOPQRSTUVWX"
    path = notebook(
        f"import nbtrack, os\npassword = 'hunter2-{secret}'\n"
        f"os.environ['MY_SERVICE_TOKEN'] = '{secret}'",
        f"%%track -e secrets\napi_key = '{secret}'\nhf_token = '{secret}'\nlr = 0.1\n"
        f"db = 'postgresql://bob:{secret}@db.example/x'\n"
        "nbtrack.log(loss=1.0)\napi_key",
        "nbtrack.wait(60)",
    )
    nb = execute(path)
    (run,) = _runs(client, "secrets")
    assert set(run.data.params) == {"lr", "db"}
    assert secret not in json.dumps(run.data.params)
    assert secret not in json.dumps(run.data.tags)
    for artifact in ("code/cell.py", "code/session_history.py"):
        text = _artifact_text(client, run.info.run_id, artifact)
        assert secret not in text
        assert "hunter2" not in text
    assert "<redacted>" in _artifact_text(client, run.info.run_id, "code/cell.py")
    record = next(
        o
        for o in outputs_of(nb.cells[1], "display_data")
        if "application/vnd.nbtrack.run+json" in o.data
    )
    assert secret not in json.dumps(record.data)


def test_tensors_numpy_scalars_and_mlflow_calls_land_in_the_run(store, client):
    path = notebook(
        "import nbtrack, mlflow, numpy as np, torch",
        "%%track -e mixed\n"
        "w = torch.tensor(2.0, requires_grad=True)\n"
        "loss = (w * 3) ** 2\n"
        "nbtrack.log(loss=loss, acc=np.float32(0.5), n=np.int64(7), flag=True)\n"
        "nbtrack.log(loss=torch.tensor([1.5]))\n"
        "mlflow.log_metric('direct', 4.0)\n"
        "mlflow.log_param('via_mlflow', 'yes')\n"
        "same = mlflow.active_run().info.run_id == nbtrack.active_run().run_id\n"
        "print('same run:', same)",
        "print('after:', mlflow.active_run())\nnbtrack.wait(60)",
    )
    nb = execute(path)
    assert "same run: True" in text_of(nb.cells[1])
    assert "after: None" in text_of(nb.cells[2])
    (run,) = _runs(client, "mixed")
    assert _history(client, run.info.run_id, "loss") == [(0, 36.0), (1, 1.5)]
    assert _history(client, run.info.run_id, "acc") == [(0, 0.5)]
    assert _history(client, run.info.run_id, "n") == [(0, 7.0)]
    assert _history(client, run.info.run_id, "flag") == [(0, 1.0)]
    assert run.data.metrics["direct"] == 4.0
    assert run.data.params["via_mlflow"] == "yes"


def test_interrupted_cell_is_killed_with_its_metrics(store, client, kernel: Kernel):
    reply, _ = kernel.run("import nbtrack, time")
    assert reply["status"] == "ok"
    msg_id = kernel.submit(
        "%%track -e interrupted\n"
        "for i in range(100000):\n"
        "    nbtrack.log(loss=float(i))\n"
        "    if i == 20:\n"
        "        print('logged twenty', flush=True)\n"
        "    time.sleep(0.01)\n"
    )
    kernel.wait_for_output(msg_id, "logged twenty")
    kernel.interrupt()
    reply = kernel.wait_reply(msg_id)
    assert reply["status"] == "error"
    assert reply["ename"] == "KeyboardInterrupt"
    reply, _ = kernel.run("print(nbtrack.wait(60))")
    (run,) = _runs(client, "interrupted")
    assert run.info.status == "KILLED"
    steps = [s for s, _ in _history(client, run.info.run_id, "loss")]
    assert len(steps) >= 21
    assert steps == list(range(len(steps)))
    # The kernel is fine afterwards: the next tracked cell is a new run.
    reply, _ = kernel.run("%%track -e interrupted\nnbtrack.log(loss=0.0)")
    assert reply["status"] == "ok"
    kernel.run("nbtrack.wait(60)")
    assert [r.info.status for r in _runs(client, "interrupted")] == ["KILLED", "FINISHED"]


def test_loading_is_light_and_magic_documents_itself(store, kernel: Kernel):
    _, outputs = kernel.run(
        "%load_ext nbtrack\nimport sys\n"
        "print(sorted(m for m in ('mlflow', 'pandas', 'plotly', 'torch') if m in sys.modules))"
    )
    printed = "".join(o["text"] for o in outputs if o["type"] == "stream" and o["name"] == "stdout")
    assert printed == "[]\n"  # none of the heavy modules was imported by loading nbtrack
    _, outputs = kernel.run("print(get_ipython().find_cell_magic('track').__doc__)")
    doc = "".join(o["text"] for o in outputs if o["type"] == "stream")
    for option in ("--experiment", "--name", "--tag", "--param", "--no-params", "--no-plot"):
        assert option in doc


def test_papermill_parameters_are_logged(store, client, tmp_path):
    import papermill

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "language": "python",
        "display_name": "Python 3",
    }
    nb.cells = [
        nbformat.v4.new_code_cell("batch_size = 32\nlr = 0.1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import nbtrack"),
        nbformat.v4.new_code_cell("%%track -e pm\nepochs = 2\nnbtrack.log(loss=lr)"),
        nbformat.v4.new_code_cell("nbtrack.wait(60)"),
    ]
    source = tmp_path / "sweep.ipynb"
    nbformat.write(nb, source)
    papermill.execute_notebook(
        str(source),
        str(tmp_path / "out.ipynb"),
        parameters={"lr": 0.5, "run_tag": "a"},
        kernel_name="python3",
        progress_bar=False,
        cwd=str(tmp_path),
    )
    (run,) = _runs(client, "pm")
    assert run.data.params == {"lr": "0.5", "run_tag": "a", "epochs": "2"}
    assert _history(client, run.info.run_id, "loss") == [(0, 0.5)]
