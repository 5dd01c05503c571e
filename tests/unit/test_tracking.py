"""One tracking-URI resolver, held against MLflow's own answer in every kind of folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nbtrack.tracking import resolve_uri

# In a fresh interpreter: nbtrack's answer without MLflow imported (the kernel's usual case),
# then with it imported (which asks mlflow.get_tracking_uri()), then MLflow's own.
_PROBE = """
import json, sys
from nbtrack.tracking import resolve_uri
without = resolve_uri()
assert "mlflow" not in sys.modules, "resolving imported MLflow"
import mlflow
print(json.dumps([without, resolve_uri(), mlflow.get_tracking_uri()]))
"""


def _answers(folder: Path, env: dict[str, str]) -> list[str]:
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    environment.update(env, MLFLOW_DISABLE_TELEMETRY="true")
    result = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    answers: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return answers


def _mlruns_with_an_experiment(folder: Path) -> None:
    experiment = folder / "mlruns" / "1"
    experiment.mkdir(parents=True)
    (experiment / "meta.yaml").write_text("name: old\n")


@pytest.mark.parametrize(
    ("case", "env", "expected"),
    [
        ("empty folder", {}, "sqlite:///{folder}/mlflow.db"),
        (
            "relative sqlite",
            {"MLFLOW_TRACKING_URI": "sqlite:///runs.db"},
            "sqlite:///{folder}/runs.db",
        ),
        (
            "server",
            {"MLFLOW_TRACKING_URI": "http://mlflow.example:5000"},
            "http://mlflow.example:5000",
        ),
        ("old mlruns", {}, "file://{folder}/mlruns"),
        ("bare path", {"MLFLOW_TRACKING_URI": "store"}, "file://{folder}/store"),
    ],
)
def test_nbtrack_and_mlflow_pick_the_same_store(
    tmp_path: Path, case: str, env: dict[str, str], expected: str
) -> None:
    folder = tmp_path.resolve()
    if case == "old mlruns":
        _mlruns_with_an_experiment(folder)
    without_mlflow, with_mlflow, mlflows_own = _answers(folder, env)
    assert without_mlflow == with_mlflow == expected.format(folder=folder)
    # MLflow may keep a relative path or a bare folder as given; made absolute, it is ours.
    assert resolve_uri(mlflows_own, folder) == without_mlflow


def test_a_notebook_in_another_folder_gets_that_folders_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    other = tmp_path / "notebooks"
    other.mkdir()
    assert resolve_uri(None, other) == f"sqlite:///{other}/mlflow.db"
    assert resolve_uri("sqlite:///sub/x.db", other) == f"sqlite:///{other}/sub/x.db"
    # Absolute and remote stores are left as they are.
    assert resolve_uri("sqlite:////abs/x.db", other) == "sqlite:////abs/x.db"
    assert resolve_uri("postgresql://u@db/x", other) == "postgresql://u@db/x"


def test_an_import_watch_fires_on_the_import_after_a_mere_lookup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Lightning and Transformers look MLflow up (importlib.util.find_spec) before importing
    # it; the lookup must not use up the watch that attaches the tracked run.
    import importlib.util
    import sys

    from nbtrack._import_watch import remove_import_watch, when_imported

    (tmp_path / "nbtrack_probe_module.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen: list[int] = []
    watch = when_imported("nbtrack_probe_module", lambda module: seen.append(module.VALUE))
    try:
        assert importlib.util.find_spec("nbtrack_probe_module") is not None
        assert seen == []
        import nbtrack_probe_module  # type: ignore[import-not-found]  # noqa: F401

        assert seen == [42]
        assert watch not in sys.meta_path
    finally:
        remove_import_watch(watch)
        sys.modules.pop("nbtrack_probe_module", None)


# MLflow's modules cannot be imported by two threads at once: the second finds them half made
# ("partially initialized module 'mlflow' has no attribute 'get_tracking_uri'", a deadlock in
# its protobuf modules) and the process may stay broken. The server extension reads stores in
# threads while its event loop resolves stores, which reads MLflow's state when imported.
_RACE = """
import sys, threading
from pathlib import Path
from nbtrack import tracking
from nbtrack.server.runs import list_runs
errors = []
def listing(uri):
    try:
        list_runs(uri, ["x.ipynb"], notebook_path="x.ipynb", max_runs=5, ui=None)
    except BaseException as error:
        errors.append(f"listing: {error!r}")
threads = [threading.Thread(target=listing, args=(uri,)) for uri in sys.argv[1:]]
for thread in threads:
    thread.start()
while any(thread.is_alive() for thread in threads):
    try:
        tracking.resolve_uri(None, Path.cwd())
    except BaseException as error:
        errors.append(f"resolving: {error!r}")
        break
for thread in threads:
    thread.join()
print(errors)
"""


def test_mlflow_is_imported_once_whatever_the_threads(tmp_path: Path) -> None:
    from nbtrack.tracking import make_client

    stores = [f"sqlite:///{tmp_path / name}.db" for name in ("a", "b")]
    for store in stores:  # created first: a listing never creates a store
        make_client(store)
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_TRACKING_URI": stores[0]}
    # A fresh interpreter, where nothing imported MLflow yet (this one did): it failed every
    # time before the lock.
    done = subprocess.run(
        [sys.executable, "-c", _RACE, *stores],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "[]", done.stdout + done.stderr[-2000:]


# The user's own `import mlflow` (in a tracked cell) takes no lock of nbtrack's, and for the
# second or so it runs, sys.modules holds a half-made mlflow, while nbtrack's sender thread
# resolves the store at each wake: "partially initialized module 'mlflow' has no attribute
# 'get_tracking_uri'", shown under the cell as a warning that the sender skipped an update.
_USER_IMPORT = """
import threading
from pathlib import Path
from nbtrack import tracking
errors, importing = [], True
def resolving():
    while importing:
        try:
            tracking.resolve_uri(None, Path.cwd())
        except BaseException as error:
            errors.append(repr(error))
            return
thread = threading.Thread(target=resolving)
thread.start()
import mlflow
importing = False
thread.join()
print(errors, tracking.resolve_uri(None, Path.cwd()) == mlflow.get_tracking_uri())
"""


def test_the_store_resolves_while_the_user_imports_mlflow_in_another_thread(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    done = subprocess.run(
        [sys.executable, "-c", _USER_IMPORT],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "[] True", done.stdout + done.stderr[-2000:]


def test_a_run_goes_to_the_experiment_chosen_by_id_where_the_store_has_it(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from nbtrack.tracking import ExperimentDeletedError, make_client, run_experiment

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = make_client(uri)
    chosen = MlflowClient(uri).create_experiment("team")
    known: dict[str, str] = {}
    assert run_experiment(client, "notebook", chosen, known) == (chosen, "team")
    assert known == {}  # the notebook's experiment is created only where it is needed
    # An id the store does not have (or could not have): the fallback, created once.
    for missing in ("424242", "not-a-number"):
        experiment, name = run_experiment(client, "notebook", missing, known)
        assert name == "notebook"
        assert client.get_experiment(experiment).name == "notebook"
    assert run_experiment(client, "notebook", None, known)[1] == "notebook"
    assert len(known) == 1
    MlflowClient(uri).delete_experiment(chosen)
    with pytest.raises(ExperimentDeletedError, match=r"'team' \(id \d+\) is deleted.*restore"):
        run_experiment(client, "notebook", chosen, known)
