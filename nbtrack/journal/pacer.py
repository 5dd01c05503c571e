"""Pacing the upload of a run whose cell still executes, to what the machine can spare.

While a cell runs, its points are safe in the journal already; the upload only keeps MLflow's
view fresh, so that a teammate watching the MLflow UI sees the run move. MLflow's client costs
~100 µs of CPU per point into SQLite (less against a server, whose round trips are waiting,
not computing), so a loop logging thousands of points a second keeps the sync process busy on
a good part of a core. Whether that core is free depends on the machine:

- **auto** (the default): the upload may use what the machine leaves idle, measured about once
  a second (``/proc/stat``; the sync process's own use counts as idle, it is its to keep),
  from one whole core down to a floor of 5 %. Where a core is free (a single-threaded loop on
  a machine with two or more cores) the upload keeps up with the loop and MLflow lags it by
  about a second (``benchmarks/bench_server.py``: the lag target, ``LAG_TARGET_S``, holds
  there). Where the loop (or anything else) keeps every core busy, the upload takes 5 % of a
  core and the loop comes first; MLflow catches up when the cell ends.
- ``NBTRACK_SYNC_CPU_SHARE``: a fixed share of a core instead (1: no pacing).

Only CPU time counts: a piece that waits on a slow remote store costs the machine nothing, so
a slow store is not paced any further. After a piece of work costing c CPU seconds the upload
rests c * (1/share - 1). A run whose cell ended, a dead kernel and ``nbtrack.wait()`` get the
upload at full speed.
"""

from __future__ import annotations

import time

from nbtrack._platform import IdleCpu

__all__ = ["FLOOR_SHARE", "LAG_TARGET_S", "Pacer"]

# A teammate watching the MLflow UI sees a running run's metrics within this many seconds of
# `log`, where a core is free (bench_server.py measures it: ~1 s into SQLite or a server).
LAG_TARGET_S = 5.0
# The least the upload gets while its cell runs, however busy the machine.
FLOOR_SHARE = 0.05
# What a cell's first paced piece is assumed to cost (~1000 points into SQLite): a cell's
# upload starts after the rest this earns (0.95 s at a 5 % share, none at a whole core).
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
        self._share = 1.0

    @property
    def share(self) -> float:
        if self.fixed is not None:
            return self.fixed
        now = time.monotonic()
        if now - self._measured_at >= _MEASURE_EVERY_S:
            self._measure(now)
        return self._share

    def _measure(self, now: float) -> None:
        own = time.process_time()
        own_cores = (own - self._own_cpu) / (now - self._measured_at)
        self._own_cpu, self._measured_at = own, now
        idle = self._idle.cores() if self._idle is not None else None
        if idle is None:  # nothing known about the machine: the cautious floor
            self._share = FLOOR_SHARE
            return
        spare = min(1.0, max(FLOOR_SHARE, idle + own_cores))
        self._share += _SMOOTHING * (spare - self._share)

    def ready(self) -> bool:
        return time.monotonic() >= self.resume_at

    def hold(self) -> None:
        """Rest before a newly running cell's first piece as after any other: otherwise every
        cell starts with a piece at full speed, which for cells of a few seconds alone came to
        more than the share (bench_loop: 12.7 % of a core at a 5 % share)."""
        self.resume_at = max(self.resume_at, time.monotonic() + self._rest(_FIRST_PIECE_CPU_S))

    def spent(self, cpu_s: float) -> None:
        self.resume_at = time.monotonic() + self._rest(cpu_s)

    def _rest(self, cpu_s: float) -> float:
        return cpu_s * (1 / self.share - 1)
