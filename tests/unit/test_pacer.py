"""The upload's pacing follows what the machine leaves idle beyond a core kept in reserve,
between a floor and a whole core; NBTRACK_SYNC_CPU_SHARE fixes it instead."""

from __future__ import annotations

import pytest

from nbtrack.journal import pacer as pacer_module
from nbtrack.journal.pacer import FLOOR_SHARE, Pacer


class Clock:
    """Monotonic and process time under the test's control."""

    def __init__(self) -> None:
        self.now = 100.0
        self.cpu = 10.0

    def monotonic(self) -> float:
        return self.now

    def process_time(self) -> float:
        return self.cpu


class Idle:
    """What the machine leaves idle, in cores, as the test says."""

    def __init__(self, cores: float | None) -> None:
        self.value = cores

    def cores(self) -> float | None:
        return self.value


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(pacer_module.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(pacer_module.time, "process_time", fake.process_time)
    return fake


def _settle(pacer: Pacer, clock: Clock, own_cores: float = 0.0, seconds: int = 10) -> float:
    for _ in range(seconds):
        clock.now += 1.0
        clock.cpu += own_cores
        share = pacer.share
    return share


def test_spare_cores_let_the_upload_keep_up(clock: Clock) -> None:
    pacer = Pacer(None, Idle(2.5))
    assert _settle(pacer, clock) == pytest.approx(1.0)
    # At a whole core, a piece earns no rest: the upload keeps up with the loop.
    pacer.spent(0.2)
    assert pacer.ready()


@pytest.mark.parametrize("idle", [0.0, 1.0])
def test_a_busy_or_small_machine_keeps_the_upload_at_the_floor(clock: Clock, idle: float) -> None:
    # One idle core (a 2-core machine running a single-threaded loop) is the reserve.
    pacer = Pacer(None, Idle(idle))
    assert _settle(pacer, clock) == pytest.approx(FLOOR_SHARE, abs=0.01)
    pacer.spent(0.1)  # a piece of 0.1 s of CPU earns ~1.9 s of rest at 5 %
    clock.now += 1.0
    assert not pacer.ready()
    clock.now += 1.0
    assert pacer.ready()


def test_the_uploads_own_cpu_counts_as_spare(clock: Clock) -> None:
    # 1.5 cores idle (one of them the reserve), the upload using a third more: about 0.83.
    pacer = Pacer(None, Idle(1.5))
    assert _settle(pacer, clock, own_cores=1 / 3) == pytest.approx(0.5 + 1 / 3, abs=0.01)


def test_a_machine_that_says_nothing_gets_the_floor(clock: Clock) -> None:
    assert _settle(Pacer(None, Idle(None)), clock) == FLOOR_SHARE


def test_a_fixed_share_is_kept_whatever_the_machine(clock: Clock) -> None:
    pacer = Pacer(0.2, Idle(2.0))
    assert _settle(pacer, clock) == 0.2
    pacer.spent(0.1)
    clock.now += 0.39
    assert not pacer.ready()
    clock.now += 0.02
    assert pacer.ready()
