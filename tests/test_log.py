"""``nbtrack.log``: what each call stores and which calls it refuses, in both versions.

``nbtrack.log`` is the C version (nbtrack/_hotpath.c) where it was built, and it hands every
call it does not take to the Python version (``nbtrack.run._log_py``). Every test runs against
both (the ``log`` fixture in conftest.py), so that the two cannot drift apart.
"""

from __future__ import annotations

import inspect
import os
import sys

import numpy as np
import pytest

import nbtrack
from nbtrack import _sender
from nbtrack import run as runs
from nbtrack.errors import NoActiveRunError

torch = pytest.importorskip("torch")


def _start(name: str = "test-log") -> runs.Run:
    run = runs.Run(name, "tests", "sqlite:///unused.db")
    runs.activate(run)
    # Drained by the test itself: a sender thread started by an earlier test must not.
    runs.forget(run)
    return run


@pytest.fixture
def run():
    active = _start()
    yield active
    runs.deactivate(active)
    runs.forget(active)


def _logged(run: runs.Run) -> dict[str, list[tuple[int, float]]]:
    """What the sender makes of everything buffered: (step, value) per metric, in order."""
    batch = _sender.drain(run)
    return {
        key: list(zip(points.steps, points.values, strict=True))
        for key, points in batch.metrics.items()
    }


def test_the_c_version_is_what_users_call():
    # The project's set-up compiles it (NBTRACK_REQUIRE_HOTPATH=1): a missing compiler must not
    # turn the tests and benchmarks into measurements of the fallback unnoticed.
    if os.environ.get("NBTRACK_PURE_PYTHON", "") not in ("", "0"):
        assert nbtrack.log is runs._log_py
    else:
        assert runs._hotpath is not None
        assert nbtrack.log is runs.log
        assert type(nbtrack.log).__name__ == "builtin_function_or_method"
        assert nbtrack.log.__doc__ == runs._log_py.__doc__
        assert str(inspect.signature(nbtrack.log)) == "(step=None, **metrics)"


def test_each_call_stores_its_values_at_their_steps(run, log):
    loss = torch.tensor(2.5, requires_grad=True) * 1
    for _ in range(2):  # the first round validates each call site, the second is the usual one
        log(loss=1.0, count=3)
        log(step=7, loss=loss, count=4)
        log(loss=loss, count=5, step=None)
    steps = [0, 7, 8, 9, 7, 8]
    assert _logged(run) == {
        "loss": list(zip(steps, [1.0, 2.5, 2.5] * 2, strict=True)),
        "count": list(zip(steps, [3.0, 4.0, 5.0] * 2, strict=True)),
    }


def test_a_long_loop_keeps_order_and_times(run, log):
    for i in range(3000):
        log(loss=float(i), lr=0.1)
    batch = _sender.drain(run)
    assert list(batch.metrics["loss"].steps) == list(range(3000))
    assert list(batch.metrics["loss"].values) == [float(i) for i in range(3000)]
    seconds = list(batch.metrics["lr"].seconds)
    assert seconds == sorted(seconds)
    assert batch.metrics["loss"].seconds is batch.metrics["lr"].seconds


def test_a_cpu_tensor_is_read_at_the_call(run, log):
    total = torch.zeros(())
    for _ in range(3):
        total += 1  # in place, after the tensor was logged
        log(total=total)
    assert _logged(run) == {"total": [(0, 1.0), (1, 2.0), (2, 3.0)]}


def _loss(log, value):
    log(loss=value)


def _step(log, value):
    log(step=value, loss=1.0)


def _bad_name(log, value):
    log(**{"bad name!": value})  # not a Python identifier: never a cached call site


@pytest.mark.parametrize(
    ("call", "values", "expected"),
    [
        (_loss, (0.5, "0.5"), (TypeError, "metric 'loss' must be a number, got str")),
        (_loss, (0.5, [1.0]), (TypeError, "metric 'loss' must be a number")),
        (_loss, (0.5, None), (TypeError, "metric 'loss' must be a number")),
        (_loss, (0.5, torch.ones(2)), (TypeError, "metric 'loss' is a tensor of shape (2,)")),
        (_step, (1, -1), (TypeError, "step must be an integer from 0 to 2**63 - 1")),
        (_step, (1, 2**63), (TypeError, "step must be an integer from 0 to 2**63 - 1")),
        (_step, (1, True), (TypeError, "step must be an integer")),
        (_step, (1, 1.5), (TypeError, "step must be an integer")),
        (_bad_name, (None, 1.0), (ValueError, "invalid metric name 'bad name!'")),
    ],
)
def test_bad_calls_raise_a_clear_error_and_store_nothing(run, log, call, values, expected):
    # The same call site (keywords written out, so one constant names tuple) logged good values
    # first: the C version has it cached, and must still hand the bad call over.
    good, bad = values
    rounds = 0 if good is None else 2
    for _ in range(rounds):
        call(log, good)
    if log is runs.log and call is _loss:
        assert any(len(entry) == 2 for entry in run.calls)  # a block: the C version took them
    error, message = expected
    with pytest.raises(error) as raised:
        call(log, bad)
    assert message in str(raised.value)
    assert {len(points) for points in _logged(run).values()} == ({rounds} if rounds else set())


def test_positional_values_and_no_active_run_are_refused(log):
    with pytest.raises(NoActiveRunError):
        log(loss=1.0)
    run = _start()
    try:
        with pytest.raises(TypeError):
            log(1.0)
        log(loss=1.0)
        log(loss=1.0)
    finally:
        runs.deactivate(run)
        runs.forget(run)
    with pytest.raises(NoActiveRunError):
        log(loss=1.0)
    assert _logged(run) == {"loss": [(0, 1.0), (1, 1.0)]}


def test_a_new_run_validates_its_names_again(log):
    first = _start("first")
    log(loss=1.0)
    log(loss=1.0)
    runs.deactivate(first)
    second = _start("second")
    try:
        log(loss=2.0)
        log(loss=3.0)
    finally:
        runs.deactivate(second)
        for run in (first, second):
            runs.forget(run)
    assert second.known_keys == {"loss"}
    assert _logged(first) == {"loss": [(0, 1.0), (1, 1.0)]}
    assert _logged(second) == {"loss": [(0, 2.0), (1, 3.0)]}


def test_numpy_scalars_and_bools_are_converted_by_the_sender(run, log):
    for _ in range(2):
        log(acc=np.float32(0.5), n=np.int64(7), flag=True)
    batch = _sender.drain(run)
    assert {key: list(points.values) for key, points in batch.metrics.items()} == {
        "acc": [0.5, 0.5],
        "n": [7.0, 7.0],
        "flag": [1.0, 1.0],
    }


def test_a_loop_far_ahead_of_the_sender_spools_its_own_backlog(monkeypatch, log):
    monkeypatch.setattr(runs, "MAX_BUFFERED_CALLS", 10)
    run = _start()  # the C version reads the limit here
    try:
        for i in range(25):
            log(loss=float(i))
        spooled_while_logging = run.curves["loss"].count
        assert [value for _, value in _logged(run)["loss"]] == [
            float(i) for i in range(spooled_while_logging, 25)
        ]
    finally:
        runs.deactivate(run)
        runs.forget(run)
    # At most twice the limit ever waited in memory.
    assert 25 - spooled_while_logging <= 20
    assert spooled_while_logging >= 10
    assert run.curves["loss"].count == 25


class _Recorder:
    """A sink keeping every batch's points, to check what the sender thread made of them."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.values: list[float] = []

    def update(self, run: runs.Run, batch) -> None:  # noqa: ARG002 - the Sink protocol
        points = batch.metrics.get("loss")
        if points is not None:
            self.steps.extend(points.steps)
            self.values.extend(points.values)


def test_every_point_arrives_once_in_order_while_the_sender_drains_meanwhile(
    monkeypatch, request, log
):
    sender = _sender.ensure_sender()
    monkeypatch.setattr(sender, "interval", 0.0005)  # drains race the loop all the time
    # and the interpreter switches threads as often as it can, also in the middle of a drain.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    request.addfinalizer(lambda: sys.setswitchinterval(interval))
    run = runs.Run("race", "tests", "sqlite:///unused.db")
    recorder = _Recorder()
    run.sinks.append(recorder)
    runs.activate(run)
    n = 200_000
    try:
        for i in range(n):
            log(loss=float(i), lr=0.1)
    finally:
        runs.deactivate(run)
    with run.drain_lock:  # wait for a drain the sender thread may be in
        pass
    _sender.drain(run)
    runs.forget(run)
    assert recorder.steps == list(range(n))
    assert recorder.values == [float(i) for i in range(n)]
