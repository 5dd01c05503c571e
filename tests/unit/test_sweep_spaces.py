"""Sweeps without a kernel: what a --sweep spec means, the checks of a sweep's options, a
trial's code, the sweep's record section, and trials nested under their parent by the sync
process."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from nbtrack._curves import Curve
from nbtrack._files import make_private_dir
from nbtrack.journal.folders import SessionInfo
from nbtrack.journal.format import encode
from nbtrack.journal.uploader import SessionUploader
from nbtrack.record import RecordSource, build_bundle, parse_record
from nbtrack.record.sweep import best_params_code, ranked, sweep_json
from nbtrack.sweep.plan import make_plan
from nbtrack.sweep.space import SpecError, grid_points, parse_dimension
from nbtrack.sweep.state import SweepState, guess_metric
from nbtrack.sweep.substitute import check_swept_names, substitute

# ------------------------------------------------------------------ specs and plans


def test_specs_read_as_lists_ranges_and_choices() -> None:
    grid = parse_dimension("lr=[1e-3, 3e-3, 1e-2]")
    assert (grid.kind, grid.values) == ("values", (1e-3, 3e-3, 1e-2))
    log = parse_dimension("lr=loguniform(1e-4, 1e-1)")
    assert (log.kind, log.low, log.high, log.log) == ("float", 1e-4, 1e-1, True)
    hidden = parse_dimension("hidden = int(32, 256, step=32)")
    assert (hidden.kind, hidden.low, hidden.high, hidden.step) == ("int", 32, 256, 32)
    assert parse_dimension("opt=choice(['adam', 'sgd'])").values == ("adam", "sgd")
    assert parse_dimension("drop=uniform(0, 0.5)").kind == "float"
    points = list(grid_points([grid, parse_dimension("hidden=[64, 128]")]))
    assert points[:2] == [{"lr": 1e-3, "hidden": 64}, {"lr": 1e-3, "hidden": 128}]
    assert len(points) == 6


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("lr", "expects NAME=SPEC"),
        ("lr=[]", "the list is empty"),
        ("lr=[1, 1]", "listed twice"),
        ("lr=__import__('os').system('x')", "neither a list of values nor a range"),
        ("lr=exec('x')", "unknown exec()"),
        ("lr=uniform(1)", "write uniform(LOW, HIGH"),
        ("lr=loguniform(0, 1)", "0 < LOW < HIGH"),
        ("h=int(1.5, 3)", "must be integers"),
        ("o=choice([[1], [2]])", "[1] is a list"),
        ("2x=[1]", "is not a Python name"),
        ("lr=[x]", "must be literal values"),
    ],
)
def test_a_bad_spec_says_what_is_wrong(spec: str, says: str) -> None:
    with pytest.raises(SpecError, match=re.escape(says)):
        parse_dimension(spec)


def test_plans_pick_their_sampler_and_check_what_it_needs() -> None:
    grid = make_plan(["lr=[1, 2, 3]", "h=[1, 2]"])
    assert (grid.sampler, grid.trials, grid.metric) == ("grid", 6, None)
    assert make_plan(["lr=[1, 2, 3]"], trials=10).trials == 3  # at most the grid
    tpe = make_plan(["lr=loguniform(1e-4, 1)"], trials=8, metric="val/acc")
    assert (tpe.sampler, tpe.goal) == ("tpe", "max")
    assert tpe.settings()["sweep.lr"] == "loguniform(1e-4, 1)"
    shared = make_plan(["lr=[1]"], study="s", storage="postgresql://u:secret@db/optuna")
    assert "secret" not in json.dumps(shared.settings())
    for kwargs, says in [
        ({"sampler": "grid", "specs": ["lr=uniform(0, 1)"]}, "is a range"),
        ({"specs": ["lr=uniform(0, 1)"]}, "needs --trials N"),
        ({"specs": ["lr=uniform(0, 1)"], "trials": 3}, "needs --sweep-metric"),
        ({"specs": ["lr=[1]"], "pruner": "median"}, "--prune needs --sweep-metric"),
        ({"specs": ["lr=[1]"], "metric": "speed"}, "add --goal min or --goal max"),
        ({"specs": ["lr=[1]"], "storage": "sqlite:///x.db"}, "--storage needs --study"),
        ({"specs": ["lr=[1]", "lr=[2]"]}, "names 'lr' twice"),
        ({"specs": ["lr=[1]"], "trials": 0}, "at least 1"),
    ]:
        specs = kwargs.pop("specs")
        with pytest.raises(ValueError, match=re.escape(says)):
            make_plan(specs, **kwargs)  # type: ignore[arg-type]


def test_the_metric_guessed_is_a_validation_one_with_a_known_goal() -> None:
    assert guess_metric(["train/loss", "val/loss", "val/acc"]) == "val/loss"
    assert guess_metric(["lr", "train_loss"]) == "train_loss"
    assert guess_metric(["lr", "speed"]) is None


# ------------------------------------------------------------------ a trial's code


def test_a_trial_changes_only_the_literals_as_the_cell_was_written() -> None:
    body = (
        "# größe: the first line is not ASCII\n"
        "lr = 1e-3  # the rate\n"
        "hidden, depth = 64, 2\n"
        "layers = [\n    1,\n    2,\n]\n"
        "!echo {lr}\n"
        "print(lr, hidden, layers)\n"
    )
    python = body.replace("!echo {lr}", "get_ipython().system('echo {lr}')")
    check_swept_names(python, ["lr", "hidden", "layers"])
    out = substitute(body, python, {"lr": 0.003, "hidden": 128, "layers": "x"})
    assert out == body.replace("1e-3", "0.003").replace("64, 2", "128, 2").replace(
        "[\n    1,\n    2,\n]", "'x'"
    )


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("rate = 0.1\n", "no assignment of lr to a literal"),
        ("lr = compute()\n", "no assignment of lr to a literal"),
        ("lr = 0.1\nlr = 0.2\n", "no assignment of lr to a literal"),
        ("for lr in (1, 2): pass\n", "no assignment of lr to a literal"),
        ("lr = other = 0.1\n", "assigned together with other names"),
    ],
)
def test_a_name_the_cell_does_not_bind_once_to_a_literal_cannot_be_swept(
    source: str, says: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        check_swept_names(source, ["lr"])


# ------------------------------------------------------------------ the record


def _trial(number: int, state: str, value: float | None, points: int = 20) -> dict[str, Any]:
    return {
        "number": number, "name": f"s-{number}", "run_id": None, "state": state,
        "value": value, "step": points - 1, "params": {"lr": repr(0.1 * (number + 1)),
        "opt": repr("adam")}, "steps": list(range(points)),
        "values": [1.0 / (i + 1) + number for i in range(points)],
    }  # fmt: skip


def _source(trials: list[dict[str, Any]], goal: str = "min") -> dict[str, Any]:
    return {"study": "s", "sampler": "tpe", "metric": "val/loss", "goal": goal,
            "objective": "last", "trials_total": len(trials), "trials": trials}  # fmt: skip


def test_trials_rank_completed_by_value_then_pruned_running_and_failed() -> None:
    trials = [
        _trial(0, "FAILED", None), _trial(1, "COMPLETE", 0.5), _trial(2, "PRUNED", 0.9),
        _trial(3, "COMPLETE", 0.2), _trial(4, "RUNNING", None), _trial(5, "KILLED", None),
    ]  # fmt: skip
    assert [t["number"] for t in ranked(trials, "min")] == [3, 1, 2, 4, 0, 5]
    assert [t["number"] for t in ranked(trials, "max")][:2] == [1, 3]
    section = sweep_json(_source(trials))
    assert section["best"] == 3
    assert best_params_code(section) == (
        "lr = 0.4\nopt = 'adam'",
        "{'lr': 0.4, 'opt': 'adam'}",
    )


def test_a_trials_curve_is_kept_in_step_order() -> None:
    # As a run's own curves (test_record): a trial that re-evaluated earlier steps is drawn in
    # step order, equal steps in the order logged, not back and forth.
    curve = Curve()
    curve.extend([0, 1, 2, 3], [0.9, 0.7, 0.5, 0.3])
    curve.extend([1], [0.6])
    sweep = SweepState("s", "tpe", 1, metric="val/loss", goal="min", objective="last")
    sweep.started(0, "trial 0", {"lr": 0.1}, None)
    sweep.feed(0, SimpleNamespace(curves={"val/loss": curve}))  # type: ignore[arg-type]
    (trial,) = sweep.source()["trials"]
    assert (trial["steps"], trial["values"]) == ([0, 1, 1, 2, 3], [0.9, 0.7, 0.6, 0.5, 0.3])
    assert trial["step"] == 3


def test_a_sweep_record_is_valid_bounded_and_escaped_whatever_its_trials() -> None:
    trials = [_trial(n, "COMPLETE", float(n), points=2000) for n in range(500)]
    trials[7]["params"]["note"] = repr("<script>alert(1)</script>")
    bundle = build_bundle(
        RecordSource(
            run_id=None, run_name="sweep", experiment_id=None, experiment_name="e",
            status="FINISHED", start_time_ms=0, end_time_ms=1000, tracking_uri=None,
            ui_url=None, notebook_path=None, cell_id=None, params={}, curves={},
            sweep=_source(trials),
        )
    )  # fmt: skip
    record = parse_record(bundle["application/vnd.nbtrack.run+json"])
    section = record["sweep"]
    assert len(section["trials"]) == 100
    assert section["trials_omitted"] == 400
    assert sum(1 for t in section["trials"] if "curve" in t) == 30
    size = sum(len(json.dumps(v)) for v in bundle.values())
    assert size < 100_000, size
    assert "<script>" not in bundle["text/html"]
    assert "lr = 0.1\nopt = &#x27;adam&#x27;" in bundle["text/html"]
    assert bundle["image/svg+xml"].count("<g class='panel'>") == 1  # the trials' panel
    assert "val/loss #0 (best)" in bundle["image/svg+xml"]
    assert "<- best" in bundle["text/plain"]
    assert bundle["image/png"]


# ------------------------------------------------------------------ nested in MLflow


def _journal(path: Path, lines: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(encode(line) for line in lines))
    os.chmod(path, 0o600)


def test_the_sync_process_nests_a_trial_under_the_parent_its_journal_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    monkeypatch.setenv("NBTRACK_STATE_DIR", str(tmp_path / "state"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    folder = make_private_dir(tmp_path / "spool" / "session")
    info = SessionInfo.create(folder, os.getpid(), None, uri)
    info.save()
    start = {"t": "start", "experiment_name": "e", "start_time": 1000, "tags": {}}
    end = {"t": "end", "status": "FINISHED", "end_time": 2000}
    # The child comes first on disk: the parent is created for it, not after it.
    _journal(
        folder / "run0000-child.spool",
        [{**start, "run_name": "trial", "parent": "run0001-parent"}, end],
    )
    _journal(folder / "run0001-parent.spool", [{**start, "run_name": "sweep"}])
    _journal(
        folder / "run0002-orphan.spool",
        [{**start, "run_name": "lost", "parent": "run0009-gone"}, end],
    )
    _journal(folder / "run0003-evil.spool", [{**start, "run_name": "evil", "parent": "../x"}, end])
    uploader = SessionUploader(info, uri)
    for _ in range(5):
        uploader.step()
    client = MlflowClient(uri)
    runs = {
        r.info.run_name: r
        for r in client.search_runs([client.get_experiment_by_name("e").experiment_id])
    }
    assert runs["trial"].data.tags["mlflow.parentRunId"] == runs["sweep"].info.run_id
    assert "mlflow.parentRunId" not in runs["lost"].data.tags
    assert "mlflow.parentRunId" not in runs["evil"].data.tags
    # A later trial of a parent whose journal is done by now reads the id from its note.
    (folder / "run0001-parent.spool").unlink()
    (folder / "run0001-parent.done").write_text(json.dumps({"run_id": runs["sweep"].info.run_id}))
    _journal(
        folder / "run0004-late.spool",
        [{**start, "run_name": "late", "parent": "run0001-parent"}, end],
    )
    uploader.step()
    late = client.search_runs([runs["sweep"].info.experiment_id], "attributes.run_name = 'late'")
    assert late[0].data.tags["mlflow.parentRunId"] == runs["sweep"].info.run_id
