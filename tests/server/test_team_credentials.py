"""Credentials that are wrong, then fixed, against a real authenticated MLflow server (the team
stack with MLflow's basic-auth app, as in ``test_team_auth``): ``nbtrack.wait()`` does not hang
on refused credentials, fixing them in any cell (or rotating a token while a cell runs) is
enough, and a wrong password inside the tracking URI is named and can be fixed, in the kernel or
with ``nbtrack sync``, without any stored key derived from it."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import test_team_auth as team
from helpers.kernels import Kernel, output_text, sync_process_pids, wait_for
from helpers.servers import AuthStack

pytestmark = pytest.mark.server


WRONG = "not-alices-password-8f3k2"
LOOP = "%%track -e {experiment} -n {name}\nfor i in range({n}):\n    nbtrack.log(loss=float(i))"


def _with_password(url: str, user: str, password: str) -> str:
    return url.replace("://", f"://{user}:{password}@")


def _wrong_password_kernel(stack: AuthStack, folder: Path, **env: str) -> Kernel:
    """A kernel signed in as alice with a wrong password, retrying a refusal every 5 s."""
    return team._kernel(
        folder,
        {
            "MLFLOW_TRACKING_URI": stack.url,
            "MLFLOW_TRACKING_USERNAME": "alice",
            "MLFLOW_TRACKING_PASSWORD": WRONG,
            "NBTRACK_RETRY_MAX_S": "5",
            "NBTRACK_EXIT_WAIT": "5",
            **env,
        },
    )


def _run_briefly(kernel: Kernel, code: str, timeout: float) -> tuple[float, list[Any]]:
    """Run ``code``; its duration and outputs. A cell still running after ``timeout`` seconds
    is interrupted and fails the test."""
    started = time.monotonic()
    msg_id = kernel.submit(code)
    try:
        kernel.wait_reply(msg_id, timeout)
    except queue.Empty:
        kernel.interrupt()
        kernel.wait_reply(msg_id, 30)
        pytest.fail(f"the cell {code!r} was still running after {timeout} s")
    return time.monotonic() - started, kernel.outputs(msg_id)


def _refused(folder: Path) -> bool:
    """Whether the sync process under ``folder`` was refused with a 401."""
    return any("401" in log.read_text() for log in folder.glob("spool/*/worker.log"))


def _runs(admin: Any, experiment: str) -> list[Any]:
    found = admin.get_experiment_by_name(experiment)
    return [] if found is None else admin.search_runs([found.experiment_id])


def _stored(admin: Any, experiment: str, points: int) -> bool:
    """Whether ``experiment`` holds one FINISHED run with ``points`` losses."""
    runs = _runs(admin, experiment)
    return (
        len(runs) == 1
        and runs[0].info.status == "FINISHED"
        and len(admin.get_metric_history(runs[0].info.run_id, "loss")) == points
    )


def _uri_keys(*uris: str) -> list[str]:
    """Every unsalted hash of a credential-bearing URI nbtrack ever kept (as a store's key)."""
    return [hashlib.sha256(uri.encode()).hexdigest()[:32] for uri in uris]


def test_wait_returns_false_soon_after_the_server_refuses_the_credentials(
    auth_stack: AuthStack, tmp_path: Path
) -> None:
    kernel = _wrong_password_kernel(auth_stack, tmp_path)
    try:
        reply, outputs = kernel.run(LOOP.format(experiment="refused-wait", name="r", n=100))
        assert reply["status"] == "ok"
        # No timeout: returns once the sync process reported the refusal (a papermill notebook
        # ending in nbtrack.wait() must not hang), and says nothing more than the one notice.
        took, shown = _run_briefly(kernel, "print('stored:', nbtrack.wait())", timeout=45)
        assert "stored: False" in output_text(shown)
        assert took < 30
        took, again = _run_briefly(kernel, "print('stored:', nbtrack.wait(40))", timeout=60)
        assert "stored: False" in output_text(again)
        assert took < 10  # the refusal is known: not the whole 40 s
        _, later = kernel.run(LOOP.format(experiment="refused-wait", name="r2", n=10))
        text = output_text(outputs + shown + again + later)
        assert text.count("401 Unauthorized") == 1, text
    finally:
        kernel.shutdown()


def test_a_password_set_in_an_ordinary_cell_uploads_the_waiting_run(
    auth_stack: AuthStack, admin: Any, tmp_path: Path
) -> None:
    (tmp_path / "alice.pw").write_text(auth_stack.passwords["alice"])
    folder = tmp_path / "notebooks"
    kernel = _wrong_password_kernel(auth_stack, folder)
    try:
        kernel.run(LOOP.format(experiment="fixed-in-a-cell", name="waiting", n=100))
        wait_for(lambda: _refused(folder), 60, "the server to refuse the wrong password")
        # An ordinary cell, then nothing: no tracked cell, no nbtrack.wait().
        reply, _ = kernel.run("os.environ['MLFLOW_TRACKING_PASSWORD'] = open('../alice.pw').read()")
        assert reply["status"] == "ok"
        wait_for(lambda: _stored(admin, "fixed-in-a-cell", 100), 30, "the waiting run uploaded")
    finally:
        kernel.shutdown()


# Logs until the test says stop; picks up a new token when the test leaves one.
ROTATING = (
    "%%track -e rotated -n rotated\n"
    "import os, time\n"
    "logged = 0\n"
    "while not os.path.exists('stop'):\n"
    "    nbtrack.log(loss=float(logged))\n"
    "    logged += 1\n"
    "    time.sleep(0.05)\n"
    "    if os.path.exists('next-token') and logged % 10 == 0:\n"
    "        os.environ['MLFLOW_TRACKING_TOKEN'] = open('next-token').read()\n"
)


def test_a_token_rotated_while_the_cell_runs_keeps_the_upload_going(
    auth_stack: AuthStack, admin: Any, tmp_path: Path
) -> None:
    stack = auth_stack.stack
    old = stack.add_token("alice")
    kernel = team._kernel(
        tmp_path, {"MLFLOW_TRACKING_URI": auth_stack.url, "MLFLOW_TRACKING_TOKEN": old}
    )

    def latest_loss() -> float:
        runs = _runs(admin, "rotated")
        return float(runs[0].data.metrics.get("loss", -1)) if runs else -1.0

    try:
        cell = kernel.submit(ROTATING)
        wait_for(lambda: latest_loss() >= 30, 60, "the run to be uploaded with the first token")
        # The token is rotated: the old one revoked on the server, the new one set in the cell.
        new = stack.add_token("alice")
        tokens_file = stack.folder / "tokens.json"
        tokens = json.loads(tokens_file.read_text())
        del tokens[hashlib.sha256(old.encode()).hexdigest()]
        tokens_file.write_text(json.dumps(tokens))
        (tmp_path / "next-token").write_text(new)
        rotated_at = latest_loss()
        # While the cell still runs, the upload goes on with the new token.
        wait_for(
            lambda: latest_loss() >= rotated_at + 40,
            20,
            f"the upload to go on after the rotation (at loss {rotated_at})",
        )
        (tmp_path / "stop").write_text("")
        assert kernel.wait_reply(cell, 120)["status"] == "ok"
        _, shown = kernel.run("print('stored:', nbtrack.wait(60), 'logged:', logged)")
        text = output_text(shown)
        assert "stored: True" in text
        logged = int(text.split("logged:")[1].split()[0])
    finally:
        kernel.shutdown()
    assert _stored(admin, "rotated", logged)  # each point once: none lost, none twice


def test_a_wrong_password_in_the_uri_is_named_and_a_corrected_uri_uploads_the_runs(
    auth_stack: AuthStack, admin: Any, tmp_path: Path
) -> None:
    right = auth_stack.passwords["alice"]
    wrong_uri = _with_password(auth_stack.url, "alice", WRONG)
    right_uri = _with_password(auth_stack.url, "alice", right)
    (tmp_path / "alice.uri").write_text(right_uri)  # beside the kernel's folder, not in it
    folder = tmp_path / "notebooks"
    kernel = team._kernel(folder, {"MLFLOW_TRACKING_URI": wrong_uri, "NBTRACK_RETRY_MAX_S": "5"})
    try:
        outputs = kernel.run(LOOP.format(experiment="uri-password", name="first", n=100))[1]
        wait_for(lambda: _refused(folder), 60, "the server to refuse the wrong password")
        outputs += kernel.run(LOOP.format(experiment="uri-password", name="second", n=50))[1]
        text = output_text(outputs)
        assert "401 Unauthorized" in text
        assert "user 'alice'" in text, text  # the user in the URI, not "an anonymous client"
        assert "MLFLOW_TRACKING_URI" in text  # where the wrong password is, so where to fix it
        # Fixed in the notebook by the URI alone (read from a file: the cell holds no password).
        _, shown = kernel.run(
            "os.environ['MLFLOW_TRACKING_URI'] = open('../alice.uri').read()\n"
            "print('stored:', nbtrack.wait(120))"
        )
        assert "stored: True" in output_text(shown)
        secrets = [WRONG, right, *_uri_keys(wrong_uri, right_uri)]
        assert team._leaks(secrets, folder, outputs + shown) == []
    finally:
        kernel.shutdown()
    runs = _runs(admin, "uri-password")
    assert sorted(len(admin.get_metric_history(r.info.run_id, "loss")) for r in runs) == [50, 100]
    assert {r.info.status for r in runs} == {"FINISHED"}


def _sync(spool: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``nbtrack sync`` of ``spool`` in an environment with only ``env``'s MLflow variables."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    return subprocess.run(
        [sys.executable, "-m", "nbtrack", "sync", "--spool-dir", str(spool)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**base, "NBTRACK_SYNC_TIMEOUT": "20", **env},
        check=False,
    )


def test_nbtrack_sync_uploads_runs_of_a_uri_with_a_wrong_password_with_the_credentials_it_has(
    auth_stack: AuthStack, admin: Any, tmp_path: Path
) -> None:
    right = auth_stack.passwords["alice"]
    wrong_uri = _with_password(auth_stack.url, "alice", WRONG)
    kernel = team._kernel(
        tmp_path,
        {"MLFLOW_TRACKING_URI": wrong_uri, "NBTRACK_RETRY_MAX_S": "5", "NBTRACK_EXIT_WAIT": "5"},
    )
    try:
        kernel.run(LOOP.format(experiment="uri-sync", name="left", n=100))
        wait_for(lambda: _refused(tmp_path), 60, "the server to refuse the wrong password")
    finally:
        kernel.shutdown()
    wait_for(lambda: not sync_process_pids(tmp_path), 60, "the sync process to give up")
    spool = tmp_path / "spool"
    assert team._leaks([WRONG, *_uri_keys(wrong_uri)], tmp_path, []) == []

    # No credentials here: one line saying so and what to set, no traceback, kept for later.
    anonymous = _sync(spool, MLFLOW_TRACKING_URI=auth_stack.url)
    assert anonymous.returncode == 1
    said = anonymous.stdout + anonymous.stderr
    assert "Traceback" not in said
    (line,) = [line for line in said.splitlines() if "kept for a later" in line]
    assert "401" in line
    assert "MLFLOW_TRACKING_PASSWORD" in line
    assert _runs(admin, "uri-sync") == []

    # The right password in the URI: uploaded.
    fixed = _sync(spool, MLFLOW_TRACKING_URI=_with_password(auth_stack.url, "alice", right))
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "1 run(s) uploaded" in fixed.stdout
    assert _stored(admin, "uri-sync", 100)
    assert WRONG not in fixed.stdout + said
    assert not list(spool.glob("*/*.spool"))
