"""Metric histories kept in the kernel, in bounded memory, for the live plot and the record."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]

# A curve longer than this is folded to half its size by min/max decimation: the shape (and every
# extreme) survives, memory stays at ~24 bytes x _MAX_POINTS per metric however long training runs.
_MAX_POINTS = 200_000
# Room for the first points; it doubles as needed. Small, because a run may log thousands of
# metrics that each get few points.
_INITIAL_CAPACITY = 64


class Curve:
    """One metric's points (step, value, unix time) in logging order, plus exact running
    statistics. Charts read them in step order (``in_step_order``).

    The points may be thinned once the curve grows past a bound (steps, values and times
    together); the statistics never are: ``count``, ``nonfinite``, ``last``, ``min`` and ``max``
    describe every point ever added.
    """

    __slots__ = (
        "_seconds",
        "_size",
        "_steps",
        "_values",
        "count",
        "last",
        "last_step",
        "max",
        "max_step",
        "min",
        "min_step",
        "nonfinite",
        "version",
    )

    def __init__(self) -> None:
        import numpy as np

        self._steps: FloatArray = np.empty(_INITIAL_CAPACITY)
        self._values: FloatArray = np.empty(_INITIAL_CAPACITY)
        self._seconds: FloatArray = np.empty(_INITIAL_CAPACITY)
        self._size = 0
        self.count = 0
        self.nonfinite = 0
        self.last = math.nan
        self.last_step = -1.0
        self.min = math.inf
        self.min_step = -1.0
        self.max = -math.inf
        self.max_step = -1.0
        # Bumped on every change so that a redraw can tell whether there is anything new.
        self.version = 0

    def extend(
        self,
        steps: Sequence[float],
        values: Sequence[float],
        seconds: Sequence[float] | None = None,
    ) -> None:
        """Append points in the order they were logged, at ``seconds`` (unix time of each point;
        NaN, i.e. unknown, when not given)."""
        import numpy as np

        n = len(values)
        if n == 0:
            return
        if isinstance(steps, range):  # the sender's usual case; asarray would loop in Python
            new_steps = np.arange(steps.start, steps.stop, steps.step, dtype=np.float64)
        else:
            new_steps = np.asarray(steps, dtype=np.float64)
        new_values = np.asarray(values, dtype=np.float64)
        end = self._size + n
        if end > len(self._values):
            capacity = max(end, 2 * len(self._values))
            self._steps = np.resize(self._steps, capacity)
            self._values = np.resize(self._values, capacity)
            self._seconds = np.resize(self._seconds, capacity)
        self._steps[self._size : end] = new_steps
        self._values[self._size : end] = new_values
        self._seconds[self._size : end] = (
            math.nan if seconds is None else np.asarray(seconds, dtype=np.float64)
        )
        self._size = end
        self.count += n
        # "Last" as MLflow has it (its run page, search_runs): the value at the highest step, of
        # equal steps the one logged later; steps may come out of order (an evaluation redone).
        top = n - 1 - int(new_steps[::-1].argmax())
        if new_steps[top] >= self.last_step:
            self.last, self.last_step = float(new_values[top]), float(new_steps[top])
        finite = np.isfinite(new_values)
        n_finite = int(finite.sum())
        self.nonfinite += n - n_finite
        if n_finite == n:  # the usual case: no masking needed
            low, high = int(new_values.argmin()), int(new_values.argmax())
        elif n_finite:
            low = int(np.where(finite, new_values, np.inf).argmin())
            high = int(np.where(finite, new_values, -np.inf).argmax())
        if n_finite:
            if new_values[low] < self.min:
                self.min, self.min_step = float(new_values[low]), float(new_steps[low])
            if new_values[high] > self.max:
                self.max, self.max_step = float(new_values[high]), float(new_steps[high])
        if self._size > _MAX_POINTS:
            self._fold()
        self.version += 1

    def points(self) -> tuple[FloatArray, FloatArray]:
        """Read-only views of the kept steps and values."""
        steps, values = self._steps[: self._size], self._values[: self._size]
        steps.flags.writeable = False
        values.flags.writeable = False
        return steps, values

    def seconds(self) -> FloatArray:
        """A read-only view of the kept points' unix times (NaN where unknown), aligned with
        ``points()``."""
        seconds = self._seconds[: self._size]
        seconds.flags.writeable = False
        return seconds

    def in_step_order(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """The kept points' steps, values and unix times, ordered by step, equal steps in the
        order they were logged: how MLflow's charts draw a metric (steps may come out of order:
        an evaluation redone for an earlier epoch). Views when the steps already are in order,
        the usual case; else sorted copies (a stable sort keeps equal steps in logged order)."""
        import numpy as np

        steps, values = self.points()
        seconds = self.seconds()
        if len(steps) < 2 or bool((steps[1:] >= steps[:-1]).all()):
            return steps, values, seconds
        order = np.argsort(steps, kind="stable")
        return steps[order], values[order], seconds[order]

    def __len__(self) -> int:
        return self._size

    def _fold(self) -> None:
        from nbtrack._decimate import kept_indices

        keep = kept_indices(self._values[: self._size], _MAX_POINTS // 2)
        self._size = len(keep)
        # Fancy indexing copies before the assignment, so the columns can be written in place.
        for column in (self._steps, self._values, self._seconds):
            column[: self._size] = column[keep]
