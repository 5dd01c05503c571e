"""The upload's pacing follows what the machine leaves idle beyond a core kept in reserve,
between a floor and a whole core; NBTRACK_SYNC_CPU_SHARE fixes it instead. It paces small
pieces, so that even a short cell's upload keeps to its share."""

from __future__ import annotations

from array import array
from pathlib import Path
from typing import Any

import pytest

from nbtrack._files import make_private_dir
from nbtrack._model import MetricPoints
from nbtrack.journal import pacer as pacer_module
from nbtrack.journal.format import LINE_POINTS, batch_columns, decode_line, encode, metrics_lines
from nbtrack.journal.pacer import FLOOR_SHARE, PIECE_POINTS, Pacer
from nbtrack.journal.upload import RunUploader


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

    def restart(self) -> None:
        pass


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


class Machine:
    """/proc/stat's idle time as it adds up: ``cores()`` says how many cores were idle on
    average since it was last asked, as the real reading does."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.idle_s = 0.0
        self.read_at, self.read_idle_s = clock.now, 0.0

    def run(self, pacer: Pacer, seconds: float, idle: float, asks: bool = True) -> list[float]:
        """``seconds`` with ``idle`` cores idle, the upload of a running cell asking for its
        share ten times a second, or nobody asking (no cell runs); the shares it got."""
        shares = []
        for _ in range(round(seconds * 10)):
            self.clock.now += 0.1
            self.idle_s += idle * 0.1
            if asks:
                shares.append(pacer.share)
        return shares

    def cores(self) -> float:
        idle = (self.idle_s - self.read_idle_s) / (self.clock.now - self.read_at)
        self.restart()
        return idle

    def restart(self) -> None:
        self.read_at, self.read_idle_s = self.clock.now, self.idle_s


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


def test_no_share_is_assumed_before_the_machine_was_read(clock: Clock) -> None:
    # The loop comes first until the machine says it has room; then the first reading counts
    # whole, not smoothed from a guess.
    pacer = Pacer(None, Idle(2.5))
    assert pacer.share == FLOOR_SHARE
    assert _settle(pacer, clock, seconds=1) == 1.0


def test_a_cells_start_is_paced_by_the_running_loop_not_by_the_quiet_time_before_it(
    clock: Clock,
) -> None:
    # A 2-core machine: a running cell's loop keeps one core busy, the reserve is the other.
    machine = Machine(clock)
    pacer = Pacer(None, machine)
    machine.run(pacer, seconds=5, idle=1.0)
    assert pacer.share == pytest.approx(FLOOR_SHARE, abs=0.01)
    # The cell ends: its rest uploads at full speed (unpaced), then the kernel idles.
    machine.run(pacer, seconds=30, idle=2.0, asks=False)
    pacer.hold()  # the next cell starts
    shares = machine.run(pacer, seconds=3, idle=1.0)
    assert max(shares) == pytest.approx(FLOOR_SHARE, abs=0.01)


def _loop_flush(calls: int) -> dict[str, MetricPoints]:
    """What the sender writes after a loop's calls: three metrics of the same calls (one time
    column), and a metric of its own calls logged every 100th step with explicit steps."""
    seconds = array("d", [1e9 + i / 2000 for i in range(calls)])
    flush = {
        key: MetricPoints(range(calls), array("d", [float(i) for i in range(calls)]), seconds)
        for key in ("loss", "acc", "lr")
    }
    val_steps = array("q", range(0, calls, 100))
    flush["val/loss"] = MetricPoints(
        val_steps, array("d", map(float, val_steps)), array("d", (1e9 + s for s in val_steps))
    )
    return flush


def test_a_fast_loops_flush_is_written_as_lines_no_larger_than_a_paced_piece() -> None:
    # Half a second of a loop logging three metrics 2,000 times a second: 3,000 points and 10
    # of a validation metric. The paced upload rests after whole lines, so a line of all of
    # them would be one burst of ~0.3 s of MLflow's work whatever the piece size.
    flush = _loop_flush(1000)
    lines = list(metrics_lines(flush))
    assert PIECE_POINTS == LINE_POINTS
    assert len(lines) > 1
    assert all(0 < count <= LINE_POINTS for _, count in lines)
    read: dict[str, list[tuple[int, float, float]]] = {}
    for line, count in lines:
        columns = batch_columns(decode_line(encode(line)))
        assert sum(len(values) for _, _, values, _ in columns) == count
        # loss, acc and lr were logged by the same calls: one time column for the three.
        assert len(line["ts"]) == len({id(seconds) for _, _, _, seconds in columns}) <= 2
        for key, steps, values, seconds in columns:
            read.setdefault(key, []).extend(zip(steps, values, seconds, strict=True))
    for key, points in flush.items():  # every point once, in the order logged
        assert read[key] == list(zip(points.steps, points.values, points.seconds, strict=True))
    # The last line holds every metric's newest point: what the preview sends ahead.
    last = {key: steps[-1] for key, steps, _, _ in batch_columns(lines[-1][0])}
    assert last == {key: points.steps[-1] for key, points in flush.items()}


def test_a_small_flush_is_one_line() -> None:
    flush = _loop_flush(50)
    lines = list(metrics_lines(flush))
    assert [count for _, count in lines] == [150 + 1]


def test_a_paced_piece_uploads_about_its_size_in_whole_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)  # the store's artifacts go to ./mlruns
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    spool = make_private_dir(tmp_path / "spool") / "run0001-aaaaaa.spool"
    lines = [encode({"t": "start", "experiment_name": "e", "run_name": "r", "start_time": 1})]
    # One sender flush of a fast loop: 1000 points of one metric, as the kernel writes them.
    steps = range(1000)
    flush = {"loss": MetricPoints(steps, array("d", steps), array("d", [1e9 + s for s in steps]))}
    lines.extend(encode(line) for line, _ in metrics_lines(flush))
    spool.write_bytes(b"".join(lines))
    uploader = RunUploader(spool, client, {})
    assert uploader.create()
    requests: list[int] = []
    log_batch = client.log_batch

    def counted(*args: Any, metrics: Any = (), **kwargs: Any) -> Any:
        requests.append(len(metrics))
        return log_batch(*args, metrics=metrics, **kwargs)

    monkeypatch.setattr(client, "log_batch", counted)

    def stored() -> list[int]:
        history = client.get_metric_history(uploader.run_id, "loss")
        return sorted(m.step for m in history)

    # One request of PIECE_POINTS, not MLflow's 1000: a piece's CPU is what the rest after it
    # is earned by, and a large one is a burst no short cell averages out.
    assert uploader.step(max_points=PIECE_POINTS)
    assert requests == [PIECE_POINTS]
    assert stored() == list(range(PIECE_POINTS))
    while uploader.step(max_points=PIECE_POINTS):
        pass
    assert requests == [PIECE_POINTS] * 4
    assert stored() == list(range(1000))  # each point once
