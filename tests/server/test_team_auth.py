"""nbtrack against a real authenticated MLflow server (the team stack with MLflow's basic-auth
app): every way of giving credentials works, none of them is ever written anywhere, wrong ones
are named and wait to be fixed, and one user cannot change another user's runs."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.kernels import Kernel, output_text, sync_process_pids, wait_for
from helpers.servers import AuthStack, signed_in

pytestmark = pytest.mark.server


def _kernel(folder: Path, env: dict[str, str]) -> Kernel:
    folder.mkdir(parents=True, exist_ok=True)
    base = {"NBTRACK_SPOOL_DIR": str(folder / "spool"), "NBTRACK_STATE_DIR": str(folder / "state")}
    kernel = Kernel(folder, env={**base, **env})
    reply, _ = kernel.run("import nbtrack, os")
    assert reply["status"] == "ok"
    return kernel


def _user_kernel(stack: Any, user: str, folder: Path) -> Kernel:
    """A kernel signed in as ``user`` through MLflow's user and password variables."""
    return _kernel(
        folder,
        {
            "MLFLOW_TRACKING_URI": stack.url,
            "MLFLOW_TRACKING_USERNAME": user,
            "MLFLOW_TRACKING_PASSWORD": stack.passwords[user],
        },
    )


def _leaks(secrets: list[str], folder: Path, outputs: list[Any]) -> list[str]:
    """Where any of ``secrets`` appears: a file under ``folder``, or an output of the kernel."""
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix != ".py":  # .py: the test's own helper files
            text = path.read_bytes().decode("utf-8", "replace")
            found += [
                f"{path}: {line.replace(s, '<the secret>')[:300]}"
                for s in secrets
                for line in text.splitlines()
                if s in line
            ]
    shown = json.dumps(outputs)
    found += [f"an output: {s[:4]}..." for s in secrets if s in shown]
    return found


def _secret_forms(user: str, password: str) -> list[str]:
    return [password, base64.b64encode(f"{user}:{password}".encode()).decode()]


TRACKED = (
    "%%track -e auth-{how} -n by-{how}\n"
    "lr = 0.1\n"
    "for i in range(100):\n    nbtrack.log(loss=float(i))\n"
    "open('model.txt', 'w').write('weights')\n"
    "nbtrack.log_artifact('model.txt')\n"
    "print(nbtrack.active_run())"
)


@pytest.mark.parametrize("how", ["environment", "token", "uri"])
def test_credentials_from_the_environment_a_token_or_the_uri_work_and_are_never_written(
    auth_stack: AuthStack, admin: Any, tmp_path: Path, how: str
) -> None:
    password = auth_stack.passwords["alice"]
    secrets = _secret_forms("alice", password)
    env = {"MLFLOW_TRACKING_URI": auth_stack.url}
    if how == "environment":
        env |= {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": password}
    elif how == "token":
        token = auth_stack.stack.add_token("alice")
        env["MLFLOW_TRACKING_TOKEN"] = token
        secrets = [token]
    else:
        env["MLFLOW_TRACKING_URI"] = auth_stack.url.replace("://", f"://alice:{password}@")
    kernel = _kernel(tmp_path, env)
    try:
        outputs = []
        cells = (
            TRACKED.format(how=how),
            "print('stored:', nbtrack.wait(120))",
            f"%%track -e auth-{how}\nraise ValueError('failing on purpose')",
            "print('stored:', nbtrack.wait(120))",
        )
        for code in cells:
            outputs += kernel.run(code)[1]
        assert "stored: True" in json.dumps(outputs)
        # While the kernel lives, its journal folder, sync process log and state are there.
        assert list(tmp_path.glob("spool/*/worker.log"))
        assert list(tmp_path.glob("spool/*/session.json"))
        assert _leaks(secrets, tmp_path, outputs) == []
    finally:
        kernel.shutdown()
    wait_for(lambda: not sync_process_pids(tmp_path), 120, "the sync process to finish")
    assert _leaks(secrets, tmp_path, []) == []

    runs = admin.search_runs([admin.get_experiment_by_name(f"auth-{how}").experiment_id])
    by_name = {run.info.run_name: run for run in runs}
    run = by_name[f"by-{how}"]
    assert run.info.status == "FINISHED"
    assert run.data.params["lr"] == "0.1"
    assert len(admin.get_metric_history(run.info.run_id, "loss")) == 100
    assert [a.path for a in admin.list_artifacts(run.info.run_id) if a.path == "model.txt"]
    failed = next(r for r in runs if r.info.run_name != f"by-{how}")
    assert failed.info.status == "FAILED"
    for run in runs:
        stored = json.dumps([run.data.params, run.data.tags])
        assert not [s for s in secrets if s in stored]


def test_wrong_credentials_are_named_once_and_the_runs_wait_until_they_are_fixed(
    auth_stack: AuthStack, admin: Any, tmp_path: Path
) -> None:
    wrong = "not-alices-password-8f3k2"
    right = auth_stack.passwords["alice"]
    (tmp_path / "alice.pw").write_text(right)  # beside the kernel's folder, not in it
    folder = tmp_path / "notebooks"
    kernel = _kernel(
        folder,
        {
            "MLFLOW_TRACKING_URI": auth_stack.url,
            "MLFLOW_TRACKING_USERNAME": "alice",
            "MLFLOW_TRACKING_PASSWORD": wrong,
            "NBTRACK_RETRY_MAX_S": "5",
        },
    )
    try:
        outputs = []
        for n in (500, 200):
            reply, shown = kernel.run(
                f"%%track -e wrong-credentials\nfor i in range({n}):\n"
                "    nbtrack.log(loss=float(i))"
            )
            assert reply["status"] == "ok"  # the cell itself runs
            outputs += shown
        text = output_text(outputs)
        # Told once, in words that name the problem and the user, never the password.
        assert text.count("401 Unauthorized") == 1, text
        assert "user 'alice'" in text
        assert "MLFLOW_TRACKING_PASSWORD" in text
        # The sync process keeps retrying, slowly, without crashing or restarting.
        (worker,) = sync_process_pids(folder)
        time.sleep(6)
        assert sync_process_pids(folder) == [worker]
        log = next(folder.glob("spool/*/worker.log")).read_text()
        assert "401" in log
        assert "crashed" not in log
        assert len(list(folder.glob("spool/*/*.spool"))) == 2  # both runs wait, on disk
        assert admin.get_experiment_by_name("wrong-credentials") is None
        assert _leaks([wrong, *_secret_forms("alice", right)], folder, outputs) == []

        # Fixed in the notebook (read from a file, so that the cell holds no password).
        _, shown = kernel.run(
            "os.environ['MLFLOW_TRACKING_PASSWORD'] = open('../alice.pw').read()\n"
            "print('stored:', nbtrack.wait(120))"
        )
        assert "stored: True" in json.dumps(shown)
    finally:
        kernel.shutdown()
    experiment = admin.get_experiment_by_name("wrong-credentials")
    runs = admin.search_runs([experiment.experiment_id])
    counts = sorted(len(admin.get_metric_history(r.info.run_id, "loss")) for r in runs)
    assert counts == [200, 500]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["nbtrack.offline"] for r in runs} == {"true"}


def test_one_users_runs_cannot_be_changed_by_another_user(
    auth_stack: AuthStack, admin: Any, tmp_path: Path
) -> None:
    from mlflow.exceptions import MlflowException

    alice = _user_kernel(auth_stack, "alice", tmp_path / "alice")
    try:
        alice.run("%%track -e alice-exp -n alices\nfor i in range(10):\n    nbtrack.log(loss=1.0)")
        _, shown = alice.run("print('stored:', nbtrack.wait(120))")
        assert "stored: True" in json.dumps(shown)
    finally:
        alice.shutdown()
    experiment = admin.get_experiment_by_name("alice-exp")
    (run,) = admin.search_runs([experiment.experiment_id])
    run_id = run.info.run_id

    bob = signed_in(auth_stack, "bob")
    assert bob.get_run(run_id).info.run_name == "alices"  # READ is everyone's default
    for change in (
        lambda: bob.log_metric(run_id, "loss", 99.0),
        lambda: bob.set_tag(run_id, "owner", "bob"),
        lambda: bob.log_param(run_id, "lr", "1"),
        lambda: bob.delete_run(run_id),
        lambda: bob.create_run(experiment.experiment_id),
    ):
        with pytest.raises(MlflowException) as refused:
            change()
        assert refused.value.error_code == "PERMISSION_DENIED"

    # Bob's notebook tracking into alice's experiment: refused by the server, said clearly;
    # his run into an experiment of his own goes on meanwhile.
    bob_kernel = _user_kernel(auth_stack, "bob", tmp_path / "bob")
    try:
        reply, refused_cell = bob_kernel.run("%%track -e alice-exp -n bobs\nnbtrack.log(loss=9.0)")
        assert reply["status"] == "ok"
        _, shown = bob_kernel.run(
            "%%track -e bob-exp -n bobs-own\nnbtrack.log(loss=1.0)\nimport time\ntime.sleep(3)"
        )
        _, waited = bob_kernel.run("print('all stored:', nbtrack.wait(120))")
        text = output_text(refused_cell + shown)
        # Not everything is stored, and nbtrack.wait() says so once only the refused run is left.
        assert "all stored: False" in output_text(waited)
        assert "403 Permission denied" in text
        assert "user 'bob'" in text
        assert "'alice-exp'" in text
    finally:
        bob_kernel.shutdown()
    (still,) = admin.search_runs([experiment.experiment_id])
    assert still.info.run_id == run_id
    assert [m.value for m in admin.get_metric_history(run_id, "loss")] == [1.0] * 10
    assert "owner" not in still.data.tags
    (own,) = admin.search_runs([admin.get_experiment_by_name("bob-exp").experiment_id])
    assert own.info.status == "FINISHED"
    # Bob's refused run stays in his journal, for `nbtrack sync` once he may write there.
    assert len(list((tmp_path / "bob").glob("spool/*/*.spool"))) == 1
