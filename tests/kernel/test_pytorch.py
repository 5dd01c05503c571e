"""PyTorch in a tracked cell, in real kernels against a real store (the SQLite default and the
team server, whose artifacts are proxied): the model logged with ``log_model`` reloads in a
fresh kernel with the same outputs, checkpoints are kept and deleted, datasets are told apart
by digest, and system metrics (a fake NVML standing in for a GPU) reach MLflow, the live view
and the record."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from helpers.kernels import Kernel, execute, notebook, outputs_of, text_of

pytest.importorskip("torch")

FAKE_NVML = Path(__file__).resolve().parents[1] / "helpers" / "fake_nvml"
STORES = ("sqlite", "server")

TRAIN = """\
%%track -e torch-models -n trained
import numpy as np
import torch

class Classifier(torch.nn.Module):      # defined in this notebook only
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU())
        self.head = torch.nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.body(x))

torch.manual_seed(0)
x = torch.randn(256, 4)
y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()
model = Classifier()
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
nbtrack.watch(model, optimizer, every=10)
nbtrack.log_dataset(torch.utils.data.TensorDataset(x, y), "blobs")
for step in range(40):
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    nbtrack.log(loss=loss)
info = nbtrack.log_model(model, "classifier", input_example=x[:5])
plain = nbtrack.log_model(model, "plain")           # no example: pickled, no signature
probe = torch.randn(8, 4)
np.save("probe.npy", probe.numpy())
with torch.no_grad():
    np.save("expected.npy", model.eval()(probe).numpy())
print("MODEL", info.model_uri)
print("PLAIN", plain.model_uri)
"""

RELOAD = """\
import mlflow.pytorch, numpy as np, torch
for uri in {uris!r}:
    model = mlflow.pytorch.load_model(uri)
    with torch.no_grad():
        got = model(torch.from_numpy(np.load("probe.npy"))).numpy()
    print("SAME", bool(np.allclose(got, np.load("expected.npy"), atol=1e-6)))
"""


def _runs(client: Any, experiment: str) -> list[Any]:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"experiment {experiment!r} was not created"
    return list(client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"]))


def test_a_logged_model_reloads_in_a_fresh_kernel_with_the_same_outputs(store, client, tmp_path):
    nb = execute(notebook("import nbtrack", TRAIN, "nbtrack.wait(60)", name="train.ipynb"))
    printed = dict(
        line.split()
        for line in text_of(nb.cells[1]).splitlines()
        if line.startswith(("MODEL ", "PLAIN "))
    )
    uri, plain_uri = printed["MODEL"], printed["PLAIN"]
    (run,) = _runs(client, "torch-models")
    assert run.info.status == "FINISHED"
    # The model belongs to the tracked run, with a signature from the example.
    model = client.get_logged_model(uri.rsplit("/", 1)[-1])
    assert model.source_run_id == run.info.run_id
    assert model.name == "classifier"
    from mlflow.models import get_model_info

    signature = get_model_info(uri).signature
    assert signature.inputs.to_dict()[0]["tensor-spec"] == {"dtype": "float32", "shape": (-1, 4)}
    assert signature.outputs.to_dict()[0]["tensor-spec"] == {"dtype": "float32", "shape": (-1, 3)}
    # watch and the dataset landed in the same run.
    assert run.data.params["model/parameters"] == str(4 * 16 + 16 + 16 * 3 + 3)
    assert {"grad_norm", "grad_norm/body", "grad_norm/head", "weight_norm", "lr"} <= set(
        run.data.metrics
    )
    history = client.get_metric_history(run.info.run_id, "grad_norm")
    assert [m.step for m in history] == [0, 10, 20, 30]
    summary = client.download_artifacts(run.info.run_id, "model/summary.txt", str(tmp_path))
    assert "Classifier(" in Path(summary).read_text()
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.name == "blobs"
    assert json.loads(dataset.dataset.profile)["features_shape"] == [256, 4]
    assert run.data.tags["nbtrack.datasets"] == f"train:blobs@{dataset.dataset.digest}"

    # A kernel that never saw the class: MLflow's own loader gives the same outputs.
    fresh = execute(notebook(RELOAD.format(uris=[uri, plain_uri]), name="reload.ipynb"))
    printed = "".join(o.text for o in outputs_of(fresh.cells[0], "stream") if o.name == "stdout")
    assert printed.split("\n") == ["SAME True", "SAME True", ""]  # (MLflow's progress: stderr)


DATASETS = """\
%%track -e data -n {name}
import numpy as np, pandas as pd
rng = np.random.default_rng({seed})
frame = pd.DataFrame({{"x": rng.normal(size=50), "label": rng.integers(0, 2, 50)}})
nbtrack.log_dataset(frame, "table")
nbtrack.log_dataset(rng.normal(size=(10, 3)), "matrix", context="eval")
"""


def test_datasets_tell_runs_on_different_data_apart(store, client):
    path = notebook(
        "import nbtrack",
        DATASETS.format(name="a", seed=1),
        DATASETS.format(name="b", seed=2),
        "try:\n    nbtrack.log_dataset([1, 2], 'l')\nexcept Exception as e:\n    print(repr(e))",
        "nbtrack.wait(60)",
    )
    nb = execute(path)
    assert "NoActiveRunError" in text_of(nb.cells[3])
    a, b = _runs(client, "data")
    inputs = {
        run.info.run_name: {
            (i.dataset.name, i.tags[0].value): i.dataset for i in run.inputs.dataset_inputs
        }
        for run in (a, b)
    }
    table_a, table_b = inputs["a"][("table", "train")], inputs["b"][("table", "train")]
    assert table_a.digest != table_b.digest  # the MLflow UI tells the two runs apart
    assert json.loads(table_a.profile) == {"num_rows": 50, "num_elements": 100}
    assert {c["name"] for c in json.loads(table_a.schema)["mlflow_colspec"]} == {"x", "label"}
    assert ("matrix", "eval") in inputs["a"]
    tag = a.data.tags["nbtrack.datasets"].split(",")
    assert tag == [
        f"train:table@{table_a.digest}",
        f"eval:matrix@{inputs['a'][('matrix', 'eval')].digest}",
    ]


def test_system_metrics_reach_mlflow_the_live_view_and_the_record(store, client, tmp_path):
    kernel = Kernel(
        tmp_path,
        env={
            "NBTRACK_SYSTEM_METRICS": "1",
            # A GPU where there is none: MLflow's monitor and nbtrack's energy meter read it.
            "PYTHONPATH": os.pathsep.join([str(FAKE_NVML), os.environ.get("PYTHONPATH", "")]),
        },
    )
    try:
        kernel.run("import nbtrack, time")
        kernel.run("%%track -e system -n warm-up\nnbtrack.log(x=1.0)\nnbtrack.wait(60)")
        reply, outputs = kernel.run(
            "%%track -e system -n shown --system\n"
            "for i in range(25):\n"
            "    nbtrack.log(loss=1 / (i + 1)); time.sleep(0.2)\n"
        )
        assert reply["status"] == "ok"
        shown = _final_record(outputs)
        reply, outputs = kernel.run(
            "%%track -e system -n not-shown\n"
            "for i in range(15):\n"
            "    nbtrack.log(loss=1 / (i + 1)); time.sleep(0.2)\n"
        )
        hidden = _final_record(outputs)
        kernel.run("nbtrack.wait(60)")
    finally:
        kernel.shutdown()
    runs = {r.info.run_name: r for r in _runs(client, "system")}
    metrics = runs["shown"].data.metrics
    # MLflow's own monitor, sampled in the sync process: the "System metrics" tab.
    assert metrics["system/gpu_0_utilization_percentage"] == 87.0
    assert metrics["system/gpu_0_power_usage_watts"] == 250.0
    assert "system/cpu_utilization_percentage" in metrics
    assert "system/system_memory_usage_megabytes" in metrics
    # The fake GPU draws 250 W: the energy covers most of the ~5 s cell.
    assert 250 < metrics["system/gpu_energy_joules"] < 250 * 60
    assert metrics["system/gpu_0_energy_joules"] == metrics["system/gpu_energy_joules"]
    assert (
        len(
            client.get_metric_history(
                runs["shown"].info.run_id, "system/gpu_0_utilization_percentage"
            )
        )
        >= 2
    )
    # --system: every sample in the record; without it, only the energy.
    assert "system/gpu_0_utilization_percentage" in shown["metrics"]
    assert shown["metrics"]["system/gpu_energy_joules"]["last"] == pytest.approx(
        metrics["system/gpu_energy_joules"], rel=1e-4
    )
    assert "system/gpu_energy_joules" in hidden["metrics"]
    assert not any(
        k.startswith("system/") and k != "system/gpu_energy_joules" for k in hidden["metrics"]
    )
    assert "system/cpu_utilization_percentage" in runs["not-shown"].data.metrics


def _final_record(outputs: list[dict[str, Any]]) -> dict[str, Any]:
    records = [
        o["data"]["application/vnd.nbtrack.run+json"]
        for o in outputs
        if "application/vnd.nbtrack.run+json" in o.get("data", {})
    ]
    assert records, "no record shown"
    record = records[-1]
    assert record["run"]["status"] == "FINISHED"
    return record


def test_a_superseded_checkpoint_already_uploaded_is_deleted_from_the_store(store, client):
    path = notebook(
        "import nbtrack, torch",
        "%%track -e checkpoints -n kept\n"
        "nbtrack.log_checkpoint({'step': 1}, step=1, keep=2)\n"
        "nbtrack.wait(60)  # step 1 is in the store now\n"
        "nbtrack.log_checkpoint({'step': 2}, step=2, keep=2)\n"
        "nbtrack.log_checkpoint({'step': 3}, step=3, keep=2)",
        "nbtrack.wait(60)",
    )
    execute(path)
    (run,) = _runs(client, "checkpoints")
    kept = [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")]
    assert kept == ["checkpoints/step-00000002.pt", "checkpoints/step-00000003.pt"]
