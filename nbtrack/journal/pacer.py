"""Keeping the upload of a run whose cell still executes under a share of one CPU core.

MLflow's client costs ~100 µs of CPU per point into SQLite, so a loop logging thousands of
points a second would keep the sync process busy on a core of its own: about two thirds of a
core for bench_loop's 6,500 points/s. On a small or shared machine that core is not free. The
points are safe in the journal already, so while the cell runs the upload only keeps MLflow's
view fresh: after a piece of work costing c CPU seconds it rests c * (1/share - 1). A run
whose cell ended, a dead kernel and ``nbtrack.wait()`` get the upload at full speed.
"""

from __future__ import annotations

import time

__all__ = ["Pacer"]

# What a cell's first paced piece is assumed to cost (~1000 points into SQLite): a cell's
# upload starts after the rest this earns, 0.95 s at the default share.
_FIRST_PIECE_CPU_S = 0.05


class Pacer:
    def __init__(self, share: float) -> None:
        self.share = share
        self.resume_at = 0.0

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
