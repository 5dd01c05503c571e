"""``nbtrack.watch`` and ``nbtrack.log_checkpoint`` on real torch models, in this process: what
is logged and when, that hooks do nothing between sampled steps, that the cell's end removes
them, and which checkpoints are kept."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.spies import Recorder

import nbtrack
from nbtrack import _registry, _sender
from nbtrack._buffer import Buffer
from nbtrack._model import Run
from nbtrack._registry import TrackedRun
from nbtrack.errors import NoActiveRunError
from nbtrack.kernel.cell import _undo_at_end

torch = pytest.importorskip("torch")


class StagingJournal(Recorder):
    """A journal stand-in with a staging folder, as ``journal/writer.Journal`` has."""

    def __init__(self, files: Path) -> None:
        super().__init__()
        self.files = files

    def stage_text(self, relative: str, text: str) -> bool:
        (self.files / relative).parent.mkdir(parents=True, exist_ok=True)
        (self.files / relative).write_text(text)
        return True


@pytest.fixture
def tracked(tmp_path: Path) -> Iterator[TrackedRun]:
    active = TrackedRun(Run("watch", "tests", "sqlite:///unused.db"), Buffer(), None)
    active.journal = StagingJournal(tmp_path)
    _registry.activate(active)
    _registry.forget(active)  # drained by the tests, not by a sender thread
    yield active
    _undo_at_end(active)
    _registry.deactivate(active)


def _model() -> Any:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def _train(model: Any, optimizer: Any, steps: int) -> None:
    x = torch.randn(16, 4)
    y = (x[:, 0] > 0).long()
    for _ in range(steps):
        if optimizer is not None:
            optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        if optimizer is not None:
            optimizer.step()


def test_watch_logs_the_size_once_and_norms_and_lr_every_n_steps(tracked):
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    nbtrack.watch(model, optimizer, every=5)
    _train(model, optimizer, 12)
    batch = _sender.drain(tracked)
    assert batch.params == {"model/parameters": "58", "model/trainable_parameters": "58"}
    steps = {key: list(points.steps) for key, points in batch.metrics.items()}
    assert steps == {
        key: [0, 5, 10]
        for key in (
            "grad_norm", "grad_norm/0", "grad_norm/2",
            "weight_norm", "weight_norm/0", "weight_norm/2", "lr",
        )
    }  # fmt: skip
    assert list(batch.metrics["lr"].values) == [0.05] * 3
    # The global norm is the norm of the per-module norms, measured before the update.
    first = {key: points.values[0] for key, points in batch.metrics.items()}
    assert first["weight_norm"] == pytest.approx(
        (first["weight_norm/0"] ** 2 + first["weight_norm/2"] ** 2) ** 0.5, rel=1e-5
    )
    ((staged, destination),) = batch.artifacts
    assert destination == "model"
    summary = (tracked.journal.files / staged).read_text()
    assert "Linear(in_features=4, out_features=8" in summary
    assert "total" in summary
    assert "58" in summary


def test_hooks_do_no_work_between_sampled_steps(tracked, monkeypatch):
    norms = []
    real_norm = torch._foreach_norm
    monkeypatch.setattr(torch, "_foreach_norm", lambda t: norms.append(len(t)) or real_norm(t))
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    nbtrack.watch(model, optimizer, every=10)
    _train(model, optimizer, 25)
    # Steps 0, 10 and 20 were sampled (grads and weights each); the 22 others only counted.
    assert len(norms) == 3 * 2
    assert len(tracked.buffer.calls) == 3


def test_without_an_optimizer_training_forwards_count_and_evaluation_does_not(tracked):
    model = _model()
    nbtrack.watch(model, every=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    _train(model, optimizer, 7)
    model.eval()
    with torch.no_grad():
        model(torch.randn(2, 4))
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 4))
    batch = _sender.drain(tracked)
    assert list(batch.metrics["grad_norm"].steps) == [0, 3, 6]
    assert "lr" not in batch.metrics
    assert all(v > 0 for v in batch.metrics["grad_norm"].values)


def test_the_cell_end_removes_the_hooks(tracked):
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    nbtrack.watch(model, optimizer, every=1)
    other = _model()
    nbtrack.watch(other, name="critic", every=1)
    assert optimizer._optimizer_step_pre_hooks
    assert other._forward_pre_hooks
    _undo_at_end(tracked)
    assert not optimizer._optimizer_step_pre_hooks
    assert not other._forward_pre_hooks
    _sender.drain(tracked)
    _train(model, optimizer, 3)
    _train(other, None, 3)
    assert tracked.buffer.calls == []


def test_watching_a_model_again_replaces_its_hooks(tracked):
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    nbtrack.watch(model, optimizer, every=1)
    nbtrack.watch(model, optimizer, every=2)
    assert len(optimizer._optimizer_step_pre_hooks) == 1
    _train(model, optimizer, 4)
    assert list(_sender.drain(tracked).metrics["grad_norm"].steps) == [0, 2]


def test_watch_refuses_what_it_cannot_watch(tracked):
    with pytest.raises(TypeError, match=r"takes a torch\.nn\.Module, got str"):
        nbtrack.watch("model")
    with pytest.raises(TypeError, match=r"torch\.optim\.Optimizer"):
        nbtrack.watch(_model(), optimizer=[0.1])
    with pytest.raises(TypeError, match="positive number of steps, got 0"):
        nbtrack.watch(_model(), every=0)
    _registry.deactivate(tracked)
    with pytest.raises(NoActiveRunError, match=r"nbtrack\.watch\(\) was called outside"):
        nbtrack.watch(_model())
    _registry.activate(tracked)
    _registry.forget(tracked)


def test_checkpoints_beyond_keep_are_neither_uploaded_nor_kept(tracked):
    model = _model()
    paths = [
        nbtrack.log_checkpoint({"model": model.state_dict(), "step": s}, step=s, keep=2)
        for s in (10, 20, 30)
    ]
    assert paths == [f"checkpoints/step-{s:08d}.pt" for s in (10, 20, 30)]
    batch = _sender.drain(tracked)
    # Three uploads asked for in order, and the oldest deleted again; its staged copy is gone,
    # so that the sync process skips it if it had not uploaded it yet.
    assert [destination for _, destination in batch.artifacts] == ["checkpoints"] * 3
    assert batch.deletions == ["checkpoints/step-00000010.pt"]
    staged = [tracked.journal.files / path for path, _ in batch.artifacts]
    assert [path.exists() for path in staged] == [False, True, True]
    restored = torch.load(staged[2], weights_only=True)
    assert restored["step"] == 30
    assert torch.equal(restored["model"]["0.weight"], model.state_dict()["0.weight"])


def test_checkpoint_arguments_are_checked(tracked):
    with pytest.raises(TypeError, match=r"step=\.\.\.\) must be an integer >= 0, got -1"):
        nbtrack.log_checkpoint({}, step=-1)
    with pytest.raises(TypeError, match=r"keep=\.\.\.\) must be an integer >= 1, got 0"):
        nbtrack.log_checkpoint({}, step=1, keep=0)
