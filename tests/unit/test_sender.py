"""The sender's grouping of buffered ``log`` calls into per-metric points.

The usual loop (implicit steps, the same names every call) takes a column-wise path; anything
else goes point by point. Both must give every metric its own steps and values in call order,
and the curves the live view and the record draw from; the journal gets each batch first.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers.spies import Recorder

import nbtrack
from nbtrack import _registry, _sender
from nbtrack._buffer import Buffer
from nbtrack._model import Run
from nbtrack._registry import TrackedRun


@pytest.fixture
def tracked() -> Iterator[TrackedRun]:
    active = TrackedRun(Run("grouping", "tests", "sqlite:///unused.db"), Buffer(), Recorder())
    _registry.activate(active)
    # Drained by the test itself: a sender thread started by another test must not.
    _registry.forget(active)
    yield active
    _registry.deactivate(active)
    _registry.forget(active)


log = nbtrack.log


def _steps_and_values(batch):
    return {key: points[:2] for key, points in _points(batch).items()}


def _points(batch):
    return {
        key: (list(points.steps), list(points.values), list(points.seconds))
        for key, points in batch.metrics.items()
    }


def test_the_same_names_every_call_give_one_column_each_with_shared_times(tracked):
    for i in range(3):
        log(loss=float(i), acc=0.5 + i)
    batch = _sender.drain(tracked)
    points = _points(batch)
    assert {key: value[:2] for key, value in points.items()} == {
        "loss": ([0, 1, 2], [0.0, 1.0, 2.0]),
        "acc": ([0, 1, 2], [0.5, 1.5, 2.5]),
    }
    assert points["loss"][2] == sorted(points["loss"][2])
    assert batch.metrics["loss"].seconds is batch.metrics["acc"].seconds
    assert isinstance(batch.metrics["loss"].steps, range)
    assert tracked.buffer.calls == []
    # The next batch goes on from the steps already used.
    log(loss=4.0, acc=0.8)
    assert _points(_sender.drain(tracked))["loss"][0] == [3]
    assert list(tracked.run.curves["acc"].points()[1]) == [0.5, 1.5, 2.5, 0.8]


def test_the_same_names_in_another_order_still_meet_in_their_columns(tracked):
    log(loss=1.0, acc=0.5)
    log(acc=0.6, loss=2.0)
    log(loss=3.0, acc=0.7)
    assert _steps_and_values(_sender.drain(tracked)) == {
        "loss": ([0, 1, 2], [1.0, 2.0, 3.0]),
        "acc": ([0, 1, 2], [0.5, 0.6, 0.7]),
    }


def test_a_single_name_and_ints_and_tensors(tracked):
    torch = pytest.importorskip("torch")
    log(loss=torch.tensor(1.5))
    log(loss=2)
    log({"loss": torch.tensor(3.5, requires_grad=True) * 1})
    assert _points(_sender.drain(tracked))["loss"][:2] == ([0, 1, 2], [1.5, 2.0, 3.5])


def test_calls_with_different_names_of_the_same_count_keep_each_metric_apart(tracked):
    log(loss=1.0, acc=0.5)
    log(loss=2.0, lr=0.1)
    log(loss=3.0, acc=0.7)
    points = _points(_sender.drain(tracked))
    assert {key: value[:2] for key, value in points.items()} == {
        "loss": ([0, 1, 2], [1.0, 2.0, 3.0]),
        "acc": ([0, 1], [0.5, 0.7]),
        "lr": ([0], [0.1]),
    }
    assert points["acc"][2] == [points["loss"][2][0], points["loss"][2][2]]


def test_explicit_steps_and_extra_names_go_point_by_point(tracked):
    log(loss=1.0)
    log(step=10, loss=2.0, acc=0.5)
    log(loss=3.0)
    points = _points(_sender.drain(tracked))
    assert points["loss"][:2] == ([0, 10, 11], [1.0, 2.0, 3.0])
    assert points["acc"][:2] == ([10], [0.5])


def test_each_batch_reaches_the_journal_before_the_views(tracked: TrackedRun) -> None:
    order: list[str] = []

    class View:
        def update(self, run: Run, batch: object) -> None:  # noqa: ARG002 - the Output protocol
            order.append(f"view saw {len(tracked.journal.batches)} batches in the journal")

    tracked.views.append(View())
    log(loss=1.0)
    _sender.drain(tracked)
    assert order == ["view saw 1 batches in the journal"]


def test_a_view_that_fails_does_not_stop_the_journal(tracked: TrackedRun) -> None:
    class Broken:
        def update(self, run: Run, batch: object) -> None:  # noqa: ARG002 - the Output protocol
            raise RuntimeError("display gone")

    tracked.views.append(Broken())
    log(loss=1.0)
    with pytest.warns(nbtrack.errors.NbtrackWarning, match="Broken failed"):
        _sender.drain(tracked)
    log(loss=2.0)
    _sender.drain(tracked)
    assert tracked.journal.points("loss") == [(0, 1.0), (1, 2.0)]


def test_a_nan_loss_tags_the_run_once_with_its_first_step(tracked: TrackedRun) -> None:
    log(loss=1.0)
    log(loss=float("nan"))
    log(loss=float("inf"))
    batch = _sender.drain(tracked)
    assert batch.tags == {"nbtrack.nonfinite.loss": "first at step 1"}
    log(loss=float("nan"))
    assert _sender.drain(tracked).tags == {}
