"""``nbtrack.log``: what each call stores, which calls it refuses, and that it loses nothing
while the sender drains the buffer at the same time."""

from __future__ import annotations

import inspect
import math
import sys
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from helpers.spies import Recorder

import nbtrack
from nbtrack import _buffer, _registry, _sender
from nbtrack._buffer import Buffer
from nbtrack._model import Run
from nbtrack._registry import TrackedRun
from nbtrack.errors import NoActiveRunError

torch = pytest.importorskip("torch")


def start(name: str = "test-log") -> TrackedRun:
    tracked = TrackedRun(Run(name, "tests", "sqlite:///unused.db"), Buffer(), Recorder())
    _registry.activate(tracked)
    # Drained by the test itself: a sender thread started by an earlier test must not.
    _registry.forget(tracked)
    return tracked


def stop(tracked: TrackedRun) -> None:
    _registry.deactivate(tracked)
    _registry.forget(tracked)


@pytest.fixture
def tracked() -> Iterator[TrackedRun]:
    active = start()
    yield active
    stop(active)


def logged(tracked: TrackedRun) -> dict[str, list[tuple[int, float]]]:
    """What the sender makes of everything buffered: (step, value) per metric, in order."""
    batch = _sender.drain(tracked)
    return {
        key: list(zip(points.steps, points.values, strict=True))
        for key, points in batch.metrics.items()
    }


def test_log_is_one_python_function_with_both_call_forms() -> None:
    assert nbtrack.log is _buffer.log
    parameters = inspect.signature(nbtrack.log).parameters
    assert [(p.name, p.kind.name, p.default) for p in parameters.values()] == [
        ("metrics", "POSITIONAL_ONLY", None),
        ("step", "KEYWORD_ONLY", None),
        ("values", "VAR_KEYWORD", inspect.Parameter.empty),
    ]


def test_each_call_stores_its_values_at_their_steps(tracked: TrackedRun) -> None:
    loss = torch.tensor(2.5, requires_grad=True) * 1
    for _ in range(2):  # the first round checks the names, the second is the usual call
        nbtrack.log(loss=1.0, count=3)
        nbtrack.log({"loss": loss, "count": 4}, step=7)
        nbtrack.log({"loss": loss}, count=5, step=None)
    steps = [0, 7, 8, 9, 7, 8]
    assert logged(tracked) == {
        "loss": list(zip(steps, [1.0, 2.5, 2.5] * 2, strict=True)),
        "count": list(zip(steps, [3.0, 4.0, 5.0] * 2, strict=True)),
    }


def test_names_with_slashes_come_through_the_mapping(tracked: TrackedRun) -> None:
    for epoch in range(3):
        nbtrack.log({"train/loss": 1.0 / (epoch + 1), "val/acc": epoch / 10}, step=epoch)
    assert logged(tracked) == {
        "train/loss": [(0, 1.0), (1, 0.5), (2, 1 / 3)],
        "val/acc": [(0, 0.0), (1, 0.1), (2, 0.2)],
    }


def test_the_mapping_and_the_keywords_take_the_same_fast_path(
    tracked: TrackedRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    loss = torch.tensor(0.5)
    nbtrack.log({"train/loss": loss, "lr": 0.1})  # first call: names are checked once
    nbtrack.log(loss=loss, lr=0.1)
    slow: list[dict[str, Any]] = []
    monkeypatch.setattr(_buffer, "_admit", lambda _buffer, values: slow.append(values))
    for _ in range(100):
        nbtrack.log({"train/loss": loss, "lr": 0.1})
        nbtrack.log(loss=loss, lr=0.1)
    assert slow == []  # a CPU tensor and floats under known names: no call left the fast path
    assert len(tracked.buffer.calls) == 202


def test_the_callers_dict_may_change_after_the_call(tracked: TrackedRun) -> None:
    metrics = {"loss": 1.0}
    nbtrack.log(metrics)
    metrics["loss"] = 2.0
    nbtrack.log(metrics)
    assert logged(tracked) == {"loss": [(0, 1.0), (1, 2.0)]}


class _Holder:
    def __init__(self) -> None:
        self.metrics = {"loss": 1.0}


def _generator_kept() -> Iterator[dict[str, float]]:
    metrics = {"loss": 1.0}
    while True:
        yield metrics


def _kept_ways() -> Iterator[tuple[str, Any, Any]]:
    """A dict the caller still reaches after the call, each way a notebook keeps one: how to
    log it, and how to change it afterwards."""
    local = {"loss": 1.0}
    yield "a variable", lambda: nbtrack.log(local), lambda: local.update(loss=9.0)
    holder = _Holder()
    yield (
        "an attribute",
        lambda: nbtrack.log(holder.metrics),
        lambda: holder.metrics.update(loss=9.0),
    )
    rows = [{"loss": 1.0}]
    yield "a list", lambda: nbtrack.log(rows[0]), lambda: rows[0].update(loss=9.0)
    yield "*args", lambda: nbtrack.log(*rows), lambda: rows[0].update(loss=9.0)
    gen = _generator_kept()
    first = next(gen)
    yield "a generator", lambda: nbtrack.log(next(gen)), lambda: first.update(loss=9.0)
    yield "globals", lambda: nbtrack.log(_SHARED), lambda: _SHARED.update(loss=9.0)


_SHARED = {"loss": 1.0}


@pytest.mark.parametrize("way", [way for way, _, _ in _kept_ways()])
def test_a_dict_the_caller_keeps_is_copied_wherever_it_is_kept(
    tracked: TrackedRun, way: str
) -> None:
    _SHARED["loss"] = 1.0
    _, log, change = next(kept for kept in _kept_ways() if kept[0] == way)
    log()
    change()
    assert logged(tracked) == {"loss": [(0, 1.0)]}


@pytest.mark.skipif(_buffer._UNSHARED < 0, reason="reference counts are not exact here")
def test_a_dict_built_for_the_call_is_kept_without_a_copy(tracked: TrackedRun) -> None:
    # Only the call holds it, so no one can change it later; keeping it saves the copy.
    built: list[int] = []

    def fresh(loss: float) -> dict[str, Any]:
        metrics = {"loss": loss, "lr": 0.1}
        built.append(id(metrics))
        return metrics

    nbtrack.log(fresh(1.0))
    nbtrack.log(fresh(2.0), step=5)
    nbtrack.log({"loss": torch.tensor(3.0), "lr": 0.1})  # a literal: read in place
    kept = [values for _, _, values in tracked.buffer.calls]
    assert [id(values) for values in kept[:2]] == built  # alive, so ids are not reused
    assert kept == [{"loss": 1.0, "lr": 0.1}, {"loss": 2.0, "lr": 0.1}, {"loss": 3.0, "lr": 0.1}]
    assert logged(tracked) == {
        "loss": [(0, 1.0), (5, 2.0), (6, 3.0)],
        "lr": [(0, 0.1), (5, 0.1), (6, 0.1)],
    }


def test_a_long_loop_keeps_order_and_times(tracked: TrackedRun) -> None:
    for i in range(3000):
        nbtrack.log(loss=float(i), lr=0.1)
    batch = _sender.drain(tracked)
    assert list(batch.metrics["loss"].steps) == list(range(3000))
    assert list(batch.metrics["loss"].values) == [float(i) for i in range(3000)]
    seconds = list(batch.metrics["lr"].seconds)
    assert seconds == sorted(seconds)
    # Metrics of the same calls share one time column (the journal stores it once).
    assert batch.metrics["loss"].seconds is batch.metrics["lr"].seconds


def test_a_cpu_tensor_is_read_at_the_call(tracked: TrackedRun) -> None:
    total = torch.zeros(())
    for _ in range(3):
        total += 1  # in place, after the tensor was logged
        nbtrack.log(total=total)
    assert logged(tracked) == {"total": [(0, 1.0), (1, 2.0), (2, 3.0)]}


def test_a_tensor_keeps_no_autograd_graph_alive(tracked: TrackedRun) -> None:
    weight = torch.ones(3, requires_grad=True)
    loss = (weight * 2).sum()
    nbtrack.log(loss=loss)
    ((_, _, values),) = tracked.buffer.calls
    assert type(values["loss"]) is float


class _OnADevice(torch.Tensor):
    """A tensor that says it is not on the CPU, as a GPU tensor would: nbtrack keeps it for
    the sender instead of reading it in the loop. (Its data is on the CPU, so that the test
    runs without a GPU; ``item`` works as on a device, which waits for the device.)"""

    @property
    def is_cpu(self) -> bool:  # type: ignore[override]
        return False


def test_a_tensor_subclass_is_a_tensor(tracked: TrackedRun) -> None:
    # nn.Parameter and other subclasses of torch.Tensor, read like tensors.
    scale = torch.nn.Parameter(torch.tensor(0.5))
    for _ in range(2):
        nbtrack.log(scale=scale)
    assert logged(tracked) == {"scale": [(0, 0.5), (1, 0.5)]}


def test_a_device_tensor_changed_in_place_after_the_call_keeps_its_logged_value(
    tracked: TrackedRun,
) -> None:
    # A running total on the GPU, logged each step: the sender reads device tensors later, so
    # it must read what the tensor held at the call, not what it holds then.
    total = torch.zeros(()).as_subclass(_OnADevice)
    for _ in range(3):
        total += 1
        nbtrack.log(total=total)
    kept = [values["total"] for _, _, values in tracked.buffer.calls]
    assert all(type(value) is _OnADevice and value is not total for value in kept)
    total += 100
    assert logged(tracked) == {"total": [(0, 1.0), (1, 2.0), (2, 3.0)]}


def test_the_sender_reads_device_tensors_in_one_transfer_per_drain(
    tracked: TrackedRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each read of a GPU tensor waits for the device: one per drain, not one per point.
    reads: list[int] = []
    real_tolist = torch.Tensor.tolist

    def tolist(tensor: Any) -> Any:
        reads.append(tensor.numel())
        return real_tolist(tensor)

    monkeypatch.setattr(_OnADevice, "tolist", tolist, raising=False)
    monkeypatch.setattr(_OnADevice, "item", lambda _: pytest.fail("read one by one"))
    monkeypatch.setattr(_OnADevice, "__float__", lambda _: pytest.fail("read one by one"))
    loss = torch.zeros(()).as_subclass(_OnADevice)
    half = torch.zeros((1,), dtype=torch.float16).as_subclass(_OnADevice)
    for i in range(100):
        nbtrack.log(loss=loss + i, half=half + i, lr=0.5)
        nbtrack.log({"val": loss - i}, step=1000 + i)
    assert logged(tracked) == {
        "loss": [(i, float(i)) for i in range(100)],
        "val": [(1000 + i, -i) for i in range(100)],
        "half": [(i, float(i)) for i in range(100)],
        "lr": [(i, 0.5) for i in range(100)],
    }
    # One read per dtype (float32, float16) for the whole batch.
    assert sorted(reads) == [100, 200]


def test_a_device_value_that_cannot_be_read_is_stored_as_nan_and_the_rest_kept(
    tracked: TrackedRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The batched read fails (a device error), so each value is read alone; the one that fails
    # again becomes a visible NaN instead of losing the batch.
    real_item = torch.Tensor.item

    def item(tensor: Any) -> Any:
        value = real_item(tensor)
        if value == 2.0:
            raise RuntimeError("device-side assert triggered")
        return value

    def tolist(_tensor: Any) -> Any:
        raise RuntimeError("device-side assert triggered")

    monkeypatch.setattr(_OnADevice, "tolist", tolist, raising=False)
    monkeypatch.setattr(_OnADevice, "item", item, raising=False)
    base = torch.zeros(()).as_subclass(_OnADevice)
    for i in range(4):
        nbtrack.log(loss=base + i, lr=0.5)
    points = logged(tracked)
    assert points["lr"] == [(i, 0.5) for i in range(4)]
    steps, values = zip(*points["loss"], strict=True)
    assert steps == (0, 1, 2, 3)
    assert values[:2] == (0.0, 1.0)
    assert math.isnan(values[2])
    assert values[3] == 3.0


def _loss(value: Any) -> None:
    nbtrack.log(loss=value)


def _step(value: Any) -> None:
    nbtrack.log(step=value, loss=1.0)


def _bad_name(value: Any) -> None:
    nbtrack.log({"bad name!": value})


def _twice(value: Any) -> None:
    nbtrack.log({"loss": value}, loss=value)


def _not_a_mapping(value: Any) -> None:
    nbtrack.log([("loss", value)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "values", "expected"),
    [
        (_loss, (0.5, "0.5"), (TypeError, "metric 'loss' must be a number, got str")),
        (_loss, (0.5, [1.0]), (TypeError, "metric 'loss' must be a number")),
        (_loss, (0.5, None), (TypeError, "metric 'loss' must be a number")),
        (_loss, (0.5, 1 + 2j), (TypeError, "metric 'loss' must be a number")),
        (_loss, (0.5, torch.ones(2)), (TypeError, "metric 'loss' is a tensor of shape (2,)")),
        (_loss, (0.5, torch.tensor(1 + 1j)), (TypeError, "metric 'loss' is a tensor")),
        (_loss, (0.5, 10**400), (ValueError, "metric 'loss' is too large to store")),
        (_loss, (0.5, 10**100_000), (ValueError, "about 100001 digits")),
        (_loss, (0.5, -(10**400)), (ValueError, "metric 'loss' is too large to store")),
        (_loss, (0.5, Fraction(10**400, 3)), (ValueError, "metric 'loss' is too large")),
        # Finite in their own type, inf as float64: refused too, never stored as inf.
        (_loss, (0.5, np.longdouble("1e400")), (ValueError, "metric 'loss' is too large")),
        (_loss, (0.5, Decimal("-1e400")), (ValueError, "metric 'loss' is too large")),
        (_step, (1, -1), (TypeError, "step must be an integer from 0 to 2**63 - 1")),
        (_step, (1, 2**63), (TypeError, "step must be an integer from 0 to 2**63 - 1")),
        (_step, (1, True), (TypeError, "step must be an integer")),
        (_step, (1, 1.5), (TypeError, "step must be an integer")),
        (_bad_name, (None, 1.0), (ValueError, "invalid metric name 'bad name!'")),
        (_twice, (None, 1.0), (ValueError, "metric 'loss' was given twice")),
        (_not_a_mapping, (None, 1.0), (TypeError, "as a mapping of names to values, got list")),
    ],
)
def test_bad_calls_raise_a_clear_error_and_store_nothing(
    tracked: TrackedRun, call: Any, values: tuple[Any, Any], expected: tuple[type, str]
) -> None:
    # The same call with good values first: the bad one comes when the names are known.
    good, bad = values
    rounds = 0 if good is None else 2
    for _ in range(rounds):
        call(good)
    error, message = expected
    with pytest.raises(error) as raised:
        call(bad)
    assert message in str(raised.value)
    assert {len(points) for points in logged(tracked).values()} == ({rounds} if rounds else set())


def test_outside_a_tracked_cell_log_says_how_to_start_one() -> None:
    with pytest.raises(NoActiveRunError, match="%%track"):
        nbtrack.log(loss=1.0)
    tracked = start()
    try:
        nbtrack.log(loss=1.0)
        nbtrack.log(loss=1.0)
    finally:
        stop(tracked)
    with pytest.raises(NoActiveRunError):
        nbtrack.log(loss=1.0)
    assert logged(tracked) == {"loss": [(0, 1.0), (1, 1.0)]}


def test_a_new_run_checks_its_names_again() -> None:
    first = start("first")
    nbtrack.log(loss=1.0)
    nbtrack.log(loss=1.0)
    stop(first)
    second = start("second")
    try:
        nbtrack.log(loss=2.0)
        nbtrack.log(loss=3.0)
    finally:
        stop(second)
    assert list(second.buffer.known) == ["loss"]
    assert logged(first) == {"loss": [(0, 1.0), (1, 1.0)]}
    assert logged(second) == {"loss": [(0, 2.0), (1, 3.0)]}


def test_numpy_scalars_bools_and_ints_become_floats(tracked: TrackedRun) -> None:
    for _ in range(2):
        nbtrack.log(acc=np.float32(0.5), n=np.int64(7), flag=True, count=3, big=np.float64(2.0))
    batch = _sender.drain(tracked)
    assert {key: list(points.values) for key, points in batch.metrics.items()} == {
        "acc": [0.5, 0.5],
        "n": [7.0, 7.0],
        "flag": [1.0, 1.0],
        "count": [3.0, 3.0],
        "big": [2.0, 2.0],
    }


def test_decimals_fractions_and_longdoubles_in_range_are_stored(tracked: TrackedRun) -> None:
    # Only a finite value that float64 cannot hold is refused; an inf the user logged is a
    # value like any other.
    for _ in range(2):
        nbtrack.log(d=Decimal("0.25"), f=Fraction(1, 4), ld=np.longdouble("1e300"))
        nbtrack.log(d=Decimal("Infinity"), f=Fraction(-3, 1), ld=np.longdouble("-inf"))
    batch = _sender.drain(tracked)
    assert {key: list(points.values) for key, points in batch.metrics.items()} == {
        "d": [0.25, float("inf")] * 2,
        "f": [0.25, -3.0] * 2,
        "ld": [1e300, float("-inf")] * 2,
    }


def test_a_loop_far_ahead_of_the_sender_drains_its_own_backlog() -> None:
    tracked = start()
    tracked.buffer.limit = 10
    tracked.buffer.overflow = lambda: _sender.drain(tracked)
    try:
        for i in range(25):
            nbtrack.log(loss=float(i))
        drained_while_logging = tracked.run.curves["loss"].count
        assert [value for _, value in logged(tracked)["loss"]] == [
            float(i) for i in range(drained_while_logging, 25)
        ]
    finally:
        stop(tracked)
    # At most twice the limit ever waited in memory.
    assert 25 - drained_while_logging <= 20
    assert drained_while_logging >= 10
    assert tracked.run.curves["loss"].count == 25
    assert tracked.journal.points("loss") == [(i, float(i)) for i in range(25)]


def test_every_point_arrives_once_in_order_while_the_sender_drains_meanwhile(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    # The sender wakes all the time, and the interpreter switches threads as often as it can,
    # also in the middle of a drain.
    monkeypatch.setenv("NBTRACK_FLUSH_INTERVAL", "0.0005")
    sender = _sender.ensure_sender()
    sender.wake()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    request.addfinalizer(lambda: sys.setswitchinterval(interval))
    tracked = TrackedRun(Run("race", "tests", "sqlite:///unused.db"), Buffer(), Recorder())
    _registry.activate(tracked)
    n = 200_000
    try:
        for i in range(n):
            nbtrack.log(loss=float(i), lr=0.1)
    finally:
        _registry.deactivate(tracked)
    with tracked.drain_lock:  # wait for a drain the sender thread may be in
        pass
    _sender.drain(tracked)
    _registry.forget(tracked)
    assert tracked.journal.points("loss") == [(i, float(i)) for i in range(n)]


@pytest.mark.parametrize("name", ["val//loss", "val/", "a/./b", "./a", ".", "a/.", "a/../b", "/a"])
def test_a_name_mlflow_refuses_as_a_path_is_refused_at_the_call(
    tracked: TrackedRun, name: str
) -> None:
    # MLflow refuses names that are not a normal path; the batch holding one was refused
    # whole, and the good points logged with it were lost (a sixth-session review).
    from mlflow.utils.validation import path_not_unique

    assert path_not_unique(name)
    with pytest.raises(ValueError, match="invalid metric name"):
        nbtrack.log({"loss": 1.0, name: 2.0})
    assert logged(tracked) == {}
