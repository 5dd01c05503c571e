"""Pacing the upload of a run whose cell still executes, to what the machine can spare.

While a cell runs, its points are safe in the journal already, and the newest point of each
metric goes to MLflow ahead of the rest every second (``preview.py``): a teammate watching the
MLflow UI sees the run move with a second or two of lag, whatever the pacing. The rest of the
upload only has to be done by the cell's end. MLflow's client costs ~50-100 µs of CPU per point
into SQLite (less against a server, whose round trips are waiting, not computing), so a loop
logging thousands of points a second would keep the sync process busy on a good part of a
core, and even a core the loop does not use is not free: they share caches and memory
(bench_loop.py measured a busy MLflow process slowing a 2-core machine's loop by 1-13 %).

- **auto** (the default): the upload may use the CPU the machine leaves idle beyond one core
  kept in reserve, measured about once a second (``/proc/stat``; the sync process's own use
  counts as idle, it is its to keep), from a whole core down to a floor of 5 %. A machine with
  several idle cores (a single-threaded loop on 4 or more) uploads as fast as the loop logs, and
  the cell's end finds nothing left to do; a small or busy one (a 2-core laptop, a loop that
  uses every core) gives the upload 5 % of a core (averaged over its pieces: ``PIECE_POINTS``),
  the loop comes first, and the rest uploads at full speed when the cell ends.
- ``NBTRACK_SYNC_CPU_SHARE``: a fixed share of a core instead (1: no pacing).

Only CPU time counts: a piece that waits on a slow remote store costs the machine nothing, so
a slow store is not paced any further (and gets several requests in flight: ``inflight.py``).
After a piece of work costing c CPU seconds the upload rests c * (1/share - 1). A run whose
cell ended, a dead kernel and ``nbtrack.wait()`` get the upload at full speed.
"""

from __future__ import annotations

import time

from nbtrack._platform import IdleCpu
from nbtrack.journal.format import LINE_POINTS

__all__ = ["FLOOR_SHARE", "LAG_TARGET_S", "PIECE_POINTS", "RESERVE_CORES", "Pacer"]

# A teammate watching the MLflow UI sees a running run's newest metrics within this many
# seconds of `log` (bench_server.py measures it: 1-2 s into SQLite or a server, one kernel).
LAG_TARGET_S = 5.0
# The least the upload gets while its cell runs, however busy the machine.
FLOOR_SHARE = 0.05
# Idle CPU left to the loop's neighbours (the kernel's sender thread, the notebook server,
# caches and memory shared with the loop's core) before the upload takes any beyond the floor.
RESERVE_CORES = 1.0
# About how many points one paced piece uploads: ~25 ms of MLflow's work into SQLite (~100 µs
# a point in batches of 250 or more), so that the rests between pieces stay under a second at
# the floor and a cell of a few seconds keeps to its share too (pieces of 1000 points cost
# 0.1-0.4 s). A piece is whole journal lines, which the kernel writes no larger: one line.
PIECE_POINTS = LINE_POINTS
# A cell's upload starts after this much rest (0.95 s at a 5 % share, none at a whole core):
# by then the machine was read once with the cell's loop running.
_FIRST_PIECE_CPU_S = 0.05
# How often the idle CPU is measured, and how much each reading moves the share.
_MEASURE_EVERY_S = 1.0
_SMOOTHING = 0.5


class Pacer:
    """The share of a core the upload of running cells may use: fixed (``share``), or
    following the idle CPU of the machine (``share=None``)."""

    def __init__(self, share: float | None, idle: IdleCpu | None = None) -> None:
        self.fixed = share
        self.resume_at = 0.0
        self._idle = idle if idle is not None or share is not None else IdleCpu()
        self._own_cpu = time.process_time()
        self._measured_at = time.monotonic()
        # None until the machine was first read: until then the loop comes first (the floor),
        # and the first reading counts whole instead of being smoothed from a guess.
        self._share: float | None = None

    @property
    def share(self) -> float:
        if self.fixed is not None:
            return self.fixed
        now = time.monotonic()
        if now - self._measured_at >= _MEASURE_EVERY_S:
            self._measure(now)
        return FLOOR_SHARE if self._share is None else self._share

    def _measure(self, now: float) -> None:
        own = time.process_time()
        own_cores = (own - self._own_cpu) / (now - self._measured_at)
        self._own_cpu, self._measured_at = own, now
        idle = self._idle.cores() if self._idle is not None else None
        if idle is None:  # nothing known about the machine: the cautious floor
            self._share = FLOOR_SHARE
            return
        spare = min(1.0, max(FLOOR_SHARE, idle + own_cores - RESERVE_CORES))
        if self._share is None:
            self._share = spare
        else:
            self._share += _SMOOTHING * (spare - self._share)

    def ready(self) -> bool:
        return time.monotonic() >= self.resume_at

    def hold(self) -> None:
        """Rest before a newly running cell's first piece as after any other: otherwise every
        cell starts with a piece at full speed, which for cells of a few seconds alone came to
        more than the share (bench_loop: 12.7 % of a core at a 5 % share).

        The measurement starts afresh here too: a reading that spanned the quiet time since
        the last cell would find the machine idle and hand the new cell's first seconds a
        whole core. With a share that started at a whole core, bench_loop's upload took 17-24 %
        of a core on 2 cores; 12-13 % once both were fixed, the rest being pieces of a whole
        journal line, which a fast loop's flush made thousands of points long (it is written
        in lines of ``PIECE_POINTS`` since)."""
        now = time.monotonic()
        self._own_cpu, self._measured_at = time.process_time(), now
        if self._idle is not None:
            self._idle.restart()
        self.resume_at = max(self.resume_at, now + self._rest(_FIRST_PIECE_CPU_S))

    def spent(self, cpu_s: float) -> None:
        self.resume_at = time.monotonic() + self._rest(cpu_s)

    def _rest(self, cpu_s: float) -> float:
        return cpu_s * (1 / self.share - 1)
