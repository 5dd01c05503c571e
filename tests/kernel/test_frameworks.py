"""Lightning, Hugging Face's Trainer and ``mlflow.autolog()`` in tracked cells, against the real
frameworks and a real store: one run per cell, never a second run beside it, and the
frameworks' metrics on nbtrack's path (so in the record, which only nbtrack's path feeds).

Tiny models built from a config, random data, a few steps on CPU; nothing is downloaded.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers.kernels import execute, notebook, records_of, text_of

pytest.importorskip("torch")

LIGHTNING_SETUP = """\
import os, torch, nbtrack
import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset

class Net(pl.LightningModule):
    def __init__(self, lr=0.1, hidden=8):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2)
        )

    def training_step(self, batch, i):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

torch.manual_seed(0)
x = torch.randn(64, 4)
loader = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=16)

def trainer(logger):
    return pl.Trainer(
        max_epochs=2, logger=logger, log_every_n_steps=1, accelerator="cpu",
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )
"""

HF_SETUP = """\
import os, torch, nbtrack
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

class RandomIds(torch.utils.data.Dataset):
    def __init__(self, n=32):
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(5, 50, (n, 12), generator=g)
        self.labels = (self.ids[:, 0] > 25).long()
    def __len__(self):
        return len(self.ids)
    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(12, dtype=torch.long),
                "labels": self.labels[i]}

def tiny_bert():
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=2))

def arguments(report_to):
    return TrainingArguments(
        output_dir="hf-out", max_steps=6, per_device_train_batch_size=8, logging_steps=1,
        report_to=report_to, save_strategy="no", use_cpu=True, disable_tqdm=True,
        learning_rate=1e-3)
"""


def _all_runs(client: Any) -> dict[str, list[Any]]:
    """Every run of the store, by experiment name: a framework's stray run shows up here."""
    return {
        e.name: list(client.search_runs([e.experiment_id]))
        for e in client.search_experiments()
        if client.search_runs([e.experiment_id])
    }


def _record(cell: Any) -> dict[str, Any]:
    (record,) = records_of(cell)
    assert record["run"]["status"] == "FINISHED"
    return record


def test_lightning_with_nbtracks_logger_and_with_its_own_mlflow_logger(store, client):
    path = notebook(
        LIGHTNING_SETUP,
        "%%track -e lightning -n own-logger\n"
        "trainer(nbtrack.lightning.Logger()).fit(Net(), loader)",
        "%%track -e lightning -n mlflow-logger\n"
        "from lightning.pytorch.loggers import MLFlowLogger\n"
        "logger = MLFlowLogger(experiment_name='elsewhere')\n"
        "trainer(logger).fit(Net(hidden=16), loader)\n"
        "print('same run:', logger.run_id == nbtrack.active_run().run_id)\n"
        "import mlflow\n"
        "print('after fit:', mlflow.MlflowClient().get_run(logger.run_id).info.status)",
        "nbtrack.wait(60)",
    )
    nb = execute(path)
    assert "same run: True" in text_of(nb.cells[2])
    # MLFlowLogger.finalize ends "its" run after fit; the tracked run ends with its cell.
    assert "after fit: RUNNING" in text_of(nb.cells[2])
    runs = _all_runs(client)
    assert set(runs) == {"lightning"}  # no 'elsewhere', no 'lightning_logs'
    by_name = {r.info.run_name: r for r in runs["lightning"]}
    assert set(by_name) == {"own-logger", "mlflow-logger"}
    for name, cell, hidden in (("own-logger", 1, "8"), ("mlflow-logger", 2, "16")):
        run = by_name[name]
        assert run.info.status == "FINISHED", name  # not ended by MLFlowLogger.finalize early
        assert run.data.params["hidden"] == hidden
        assert run.data.params["lr"] == "0.1"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
        assert steps == list(range(8)), name  # 2 epochs of 4 batches, Lightning's steps
        # On nbtrack's path: the record (fed only by it) has Lightning's metrics.
        assert _record(nb.cells[cell])["metrics"]["train_loss"]["count"] == 8


def test_transformers_trainer_with_the_callback_and_with_report_to_mlflow(store, client):
    path = notebook(
        HF_SETUP,
        "%%track -e hf -n callback\n"
        "Trainer(model=tiny_bert(), args=arguments('none'), train_dataset=RandomIds(),\n"
        "        callbacks=[nbtrack.transformers.Callback()]).train()",
        "%%track -e hf -n report-to\n"
        "Trainer(model=tiny_bert(), args=arguments('mlflow'), train_dataset=RandomIds()).train()",
        "nbtrack.wait(60)",
    )
    nb = execute(path)
    runs = _all_runs(client)
    assert set(runs) == {"hf"}
    by_name = {r.info.run_name: r for r in runs["hf"]}
    assert set(by_name) == {"callback", "report-to"}
    for name, cell in (("callback", 1), ("report-to", 2)):
        run = by_name[name]
        assert run.info.status == "FINISHED", name
        history = client.get_metric_history(run.info.run_id, "loss")
        assert [m.step for m in history] == [1, 2, 3, 4, 5, 6], name
        assert {"learning_rate", "grad_norm", "epoch"} <= set(run.data.metrics), name
        assert run.data.params["learning_rate"] == "0.001", name
        record = _record(nb.cells[cell])
        assert record["metrics"]["loss"]["count"] == 6, name
    assert by_name["callback"].data.params["config/hidden_size"] == "16"


def test_mlflow_autolog_lands_in_the_tracked_run(store, client):
    path = notebook(
        "import nbtrack, mlflow\nmlflow.sklearn.autolog()",
        "%%track -e autolog -n forest\n"
        "from sklearn.datasets import make_classification\n"
        "from sklearn.ensemble import RandomForestClassifier\n"
        "X, y = make_classification(n_samples=200, random_state=0)\n"
        "model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)",
        "nbtrack.wait(60)",
    )
    nb = execute(path)
    runs = _all_runs(client)
    assert set(runs) == {"autolog"}
    (run,) = runs["autolog"]
    assert run.info.status == "FINISHED"
    assert run.data.params["n_estimators"] == "5"
    assert run.data.metrics["training_accuracy_score"] > 0.9
    (model,) = client.search_logged_models([run.info.experiment_id])
    assert model.source_run_id == run.info.run_id
    # MLflow links autolog's scores to the model it logged: such metrics go to MLflow as they
    # are (nbtrack's journal does not carry that link), so the record has the run, not them.
    assert "training_accuracy_score" in {m.key for m in model.metrics}
    assert _record(nb.cells[1])["run"]["id"] == run.info.run_id
