"""Sweeps in real kernels: %%track --sweep runs the cell once per trial, each a child run of one
parent in MLflow; failures, pruning, interrupts and the sweep's record."""

from __future__ import annotations

import pytest
from helpers.kernels import RECORD, execute, notebook, records_of, text_of

from nbtrack.record import parse_record

pytestmark = pytest.mark.kernel

GRID = (
    '%%track -e grid -n g --sweep "lr=[0.1, 0.2, 0.3]" --sweep "hidden=[1, 2]"\n'
    "lr = 0.5  # replaced by each trial's value\n"
    "hidden = 3\n"
    'for i in range(5): nbtrack.log({"val/loss": lr * hidden / (i + 1)}, step=i)\n'
    'if (lr, hidden) == (0.2, 2): raise ValueError("boom")\n'
)


def _runs(client, experiment):
    found = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return {r.info.run_name: r for r in found}


def test_grid_sweep_runs_every_combination_as_child_runs_of_one_parent(store, client, tmp_path):
    path = notebook(
        "import nbtrack",
        GRID,
        "nbtrack.wait(60)\nparent = nbtrack.runs('grid').query('name == \"g\"').run_id.iloc[0]\n"
        "trials = nbtrack.runs(parent=parent)\n"
        "print(sorted(trials['name']), sorted(trials['params.lr']))",
        folder=tmp_path,
    )
    nb = execute(path)  # a failing trial does not fail the cell: the sweep goes on
    runs = _runs(client, "grid")
    parent = runs.pop("g")
    assert parent.info.status == "FINISHED"
    assert parent.data.params["sweep.lr"] == "[0.1, 0.2, 0.3]"
    assert parent.data.params["sweep.sampler"] == "grid"
    assert parent.data.tags["nbtrack.sweep.best_trial"] == "0"
    assert len(runs) == 6
    combos = set()
    for name, run in runs.items():
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id, name
        lr, hidden = float(run.data.params["lr"]), int(run.data.params["hidden"])
        combos.add((lr, hidden))
        failed = (lr, hidden) == (0.2, 2)
        assert run.info.status == ("FAILED" if failed else "FINISHED")
        assert run.data.tags["nbtrack.trial_state"] == ("FAILED" if failed else "COMPLETE")
        # The trial ran the cell with its own values: its metric says so.
        assert run.data.metrics["val/loss"] == pytest.approx(lr * hidden / 5)
    assert combos == {(lr, h) for lr in (0.1, 0.2, 0.3) for h in (1, 2)}
    # The parent's own curve: each completed trial's value at its trial number.
    history = client.get_metric_history(parent.info.run_id, "val/loss")
    assert len(history) == 5
    assert min(m.value for m in history) == pytest.approx(0.02)

    sweep_cell = nb.cells[1]
    assert "ValueError: boom" in text_of(sweep_cell)  # the failed trial's traceback
    (raw,) = records_of(sweep_cell)
    record = parse_record(raw)
    section = record["sweep"]
    assert record["run"]["id"] == parent.info.run_id
    assert section["best"] == 0
    assert [t["state"] for t in section["trials"]][-1] == "FAILED"
    values = [t["value"] for t in section["trials"] if t["state"] == "COMPLETE"]
    assert values == sorted(values)  # ranked by the metric, the best first
    assert all(t["run_id"] for t in section["trials"])
    assert section["trials"][0]["params"] == {"lr": "0.1", "hidden": "1"}
    html = next(o for o in sweep_cell.outputs if RECORD in o.get("data", {})).data["text/html"]
    assert "★ best" in html
    assert "lr = 0.1\nhidden = 1" in html
    assert "{&#x27;lr&#x27;: 0.1, &#x27;hidden&#x27;: 1}" in html
    assert "['g-0', 'g-1', 'g-2', 'g-3', 'g-4', 'g-5'] [0.1, 0.1, 0.2, 0.2, 0.3, 0.3]" in (
        text_of(nb.cells[2])
    )


def test_stop_on_error_stops_the_sweep_and_fails_the_cell(store, client, tmp_path):
    path = notebook(
        "import nbtrack",
        GRID.replace("--sweep ", "--stop-on-error --sweep ", 1),
        folder=tmp_path,
    )
    nb = execute(path, allow_errors=True)
    assert "SweepError: trial 3 failed (ValueError: boom); --stop-on-error" in text_of(nb.cells[1])
    runs = _runs(client, "grid")
    assert runs.pop("g").info.status == "FAILED"
    assert sorted(runs) == ["g-0", "g-1", "g-2", "g-3"]


def test_tpe_sweep_with_pruning_stops_hopeless_trials_at_a_log_call(store, client, tmp_path):
    # Trials whose loss stays high are pruned by the median of the trials before them.
    path = notebook(
        "import nbtrack",
        '%%track -e tpe -n t --sweep "lr=loguniform(1e-3, 1.0)" --sweep "opt=choice([\'a\', '
        "'b'])\" --trials 10 --sweep-metric val/loss --prune --seed 1\n"
        "lr = 0.5\nopt = 'a'\nreached = 0\n"
        "for epoch in range(8):\n"
        '    nbtrack.log({"val/loss": 1 / (lr * 10 + 1) + 1 / (epoch + 1)}, step=epoch)\n'
        "    reached = epoch\n"
        "print('trial reached epoch', reached)",
        folder=tmp_path,
    )
    nb = execute(path)
    runs = _runs(client, "tpe")
    parent = runs.pop("t")
    assert parent.info.status == "FINISHED"
    assert len(runs) == 10
    pruned = {n: r for n, r in runs.items() if r.data.tags["nbtrack.trial_state"] == "PRUNED"}
    assert pruned, "some trials should be pruned"
    for run in pruned.values():
        assert run.info.status == "KILLED"
        assert run.data.tags["nbtrack.pruned"].startswith("at step ")
        step = int(run.data.tags["nbtrack.pruned"].split()[2])
        history = client.get_metric_history(run.info.run_id, "val/loss")
        # Stopped right at the call that logged the pruned step, which is stored.
        assert max(m.step for m in history) == step < 7
    for run in runs.values():
        assert 1e-3 <= float(run.data.params["lr"]) <= 1.0
        assert run.data.params["opt"] in ("a", "b")
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    out = text_of(nb.cells[1])
    assert "pruned at step" in out
    assert "Traceback" not in out
    section = parse_record(records_of(nb.cells[1])[0])["sweep"]
    assert {t["state"] for t in section["trials"]} == {"COMPLETE", "PRUNED"}
    best = min(t["value"] for t in section["trials"] if t["state"] == "COMPLETE")
    assert section["trials"][0]["value"] == best
    assert section["best"] == section["trials"][0]["number"]


def test_an_interrupt_ends_the_trial_and_the_parent_killed_and_interrupts_the_cell(kernel, client):
    kernel.run("import nbtrack")
    msg_id = kernel.submit(
        '%%track -e stop -n s --sweep "lr=[1, 2, 3]"\nlr = 0\nimport time\n'
        "for i in range(600):\n"
        "    nbtrack.log(loss=lr / (i + 1))\n"
        "    if lr == 2 and i == 3: print('trial 2 running', flush=True)\n"
        # Only the trial that is interrupted takes its time (30 s); the first one ends at once.
        "    time.sleep(0.05 if lr == 2 else 0)\n"
    )
    kernel.wait_for_output(msg_id, "trial 2 running", timeout=120)
    kernel.interrupt()
    reply = kernel.wait_reply(msg_id)
    assert reply["status"] == "error"
    assert reply["ename"] == "KeyboardInterrupt"
    kernel.run("nbtrack.wait(60)")
    runs = _runs(client, "stop")
    assert runs["s"].info.status == "KILLED"
    assert runs["s-0"].info.status == "FINISHED"
    assert runs["s-1"].info.status == "KILLED"
    assert "s-2" not in runs
    # The kernel goes on: the next cell is tracked as usual.
    reply, _ = kernel.run("%%track -e stop -n after\nnbtrack.log(loss=1.0)")
    assert reply["status"] == "ok"


def test_sweep_mistakes_are_usage_errors_before_any_run(store, client, tmp_path):
    path = notebook(
        "import nbtrack",
        '%%track -e bad --sweep "lr=[0.1, 0.2]"\nrate = 0.1\nnbtrack.log(loss=rate)',
        '%%track -e bad --sweep "lr=loguniform(1e-4, 1)"\nlr = 0.1\nnbtrack.log(loss=lr)',
        "%%track -e bad --trials 3\nnbtrack.log(loss=1.0)",
        folder=tmp_path,
    )
    nb = execute(path, allow_errors=True)
    assert "the cell has no assignment of lr to a literal" in text_of(nb.cells[1])
    assert "--sampler tpe needs --trials N" in text_of(nb.cells[2])
    assert "--trials belongs to a sweep" in text_of(nb.cells[3])
    assert client.get_experiment_by_name("bad") is None  # nothing was tracked


def test_the_sweep_notebook_runs_a_grid_and_a_pruned_tpe_sweep(store, client, tmp_path):
    import shutil
    from pathlib import Path

    path = tmp_path / "03_sweep.ipynb"
    root = Path(__file__).resolve().parents[2]
    shutil.copy(root / "example_notebooks" / "03_sweep.ipynb", path)
    nb = execute(path)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    records = [parse_record(r) for cell in code for r in records_of(cell)]
    assert [r["run"]["name"] for r in records] == ["grid", "tpe"]
    grid, tpe = (r["sweep"] for r in records)
    assert [t["state"] for t in grid["trials"]] == ["COMPLETE"] * 4
    assert grid["metric"] == "val/loss"  # guessed: the first validation metric with a goal
    assert len(tpe["trials"]) == 10
    assert "PRUNED" in {t["state"] for t in tpe["trials"]}
    assert tpe["trials"][0]["number"] == tpe["best"]
    experiment = client.get_experiment_by_name("sweep").experiment_id
    runs = client.search_runs([experiment])
    by_name = {r.info.run_name: r for r in runs}
    for parent in ("grid", "tpe"):
        children = [
            r for r in runs if r.data.tags.get("mlflow.parentRunId") == by_name[parent].info.run_id
        ]
        assert len(children) == (4 if parent == "grid" else 10)
    table = text_of(code[-1])
    assert "tpe-0" in table
    assert "KILLED" in table  # pruned trials
    assert by_name["grid-3"].data.metrics["val/acc"] > 0.8  # the trials really trained
