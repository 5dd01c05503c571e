"""``nbtrack.log``: what each call stores and which calls it refuses, in both versions.

``nbtrack.log`` is the C version (nbtrack/_hotpath.c) where it was built, and it hands every
call it does not take to the Python version (``nbtrack.run._log_py``). Every test runs against
both, called directly, so that the two cannot drift apart.
"""

from __future__ import annotations

import inspect
import os

import numpy as np
import pytest

import nbtrack
from nbtrack import _sender
from nbtrack import run as runs
from nbtrack.errors import NoActiveRunError

torch = pytest.importorskip("torch")


@pytest.fixture(params=["c", "python"])
def log(request):
    if request.param == "c":
        if runs._hotpath is None:
            pytest.skip("the C hot path is not built or NBTRACK_PURE_PYTHON is set")
        return runs.log
    return runs._log_py


def _start(name: str = "test-log") -> runs.Run:
    run = runs.Run(name, "tests", "sqlite:///unused.db")
    runs.activate(run)
    return run


@pytest.fixture
def run():
    active = _start()
    yield active
    runs.deactivate(active)
    runs.forget(active)


def _records(run: runs.Run) -> list[tuple]:
    return [(step, names, values) for step, _, names, values in run.calls]


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


def test_each_call_stores_names_values_and_step(run, log):
    loss = torch.tensor(2.5, requires_grad=True) * 1
    for _ in range(2):  # the second round takes the C fast path
        log(loss=1.0, count=3)
        log(step=7, loss=loss, count=4)
        log(loss=loss, count=5, step=None)
    assert (
        _records(run)
        == [
            (None, ("loss", "count"), (1.0, 3)),
            (7, ("loss", "count"), (2.5, 4)),
            (None, ("loss", "count"), (2.5, 5)),
        ]
        * 2
    )
    times = [call[1] for call in run.calls]
    assert times == sorted(times)


def test_a_cpu_tensor_is_read_at_the_call(run, log):
    total = torch.zeros(())
    for _ in range(3):
        total += 1  # in place, after the tensor was logged
        log(total=total)
    assert [values for _, _, values in _records(run)] == [(1.0,), (2.0,), (3.0,)]
    assert all(type(values[0]) is float for _, _, values in _records(run))


@pytest.mark.parametrize(
    ("metrics", "error", "message"),
    [
        ({"loss": "0.5"}, TypeError, "metric 'loss' must be a number, got str"),
        ({"loss": [1.0]}, TypeError, "metric 'loss' must be a number"),
        ({"loss": None}, TypeError, "metric 'loss' must be a number"),
        ({"loss": torch.ones(2)}, TypeError, "metric 'loss' is a tensor of shape (2,)"),
        ({"loss": 1.0, "step": -1}, TypeError, "step must be an integer from 0 to 2**63 - 1"),
        ({"loss": 1.0, "step": 2**63}, TypeError, "step must be an integer from 0 to 2**63 - 1"),
        ({"loss": 1.0, "step": True}, TypeError, "step must be an integer"),
        ({"loss": 1.0, "step": 1.5}, TypeError, "step must be an integer"),
        ({"bad name!": 1.0}, ValueError, "invalid metric name 'bad name!'"),
    ],
)
def test_bad_calls_raise_a_clear_error_and_store_nothing(run, log, metrics, error, message):
    # The same call site logged good values before, so the C version has its names cached.
    good = {key: (1 if key == "step" else 0.5) for key in metrics}
    for _ in range(2):
        if "bad name!" not in metrics:
            log(**good)
    stored = len(run.calls)
    with pytest.raises(error) as raised:
        log(**metrics)
    assert message in str(raised.value)
    assert len(run.calls) == stored


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
    assert len(run.calls) == 2


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
    assert [values for _, _, values in _records(first)] == [(1.0,), (1.0,)]
    assert [values for _, _, values in _records(second)] == [(2.0,), (3.0,)]


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
    finally:
        runs.deactivate(run)
        runs.forget(run)
    assert len(run.calls) <= 11
    drained = run.curves["loss"].count
    assert drained + len(run.calls) == 25
    assert drained >= 11
