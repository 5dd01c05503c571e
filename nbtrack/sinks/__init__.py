"""Where a run's data goes. Each destination is a sink behind the same three calls.

``start`` and ``end`` run in the kernel's main thread when the cell starts and ends; ``update``
runs in the sender thread with everything logged since the previous update. A sink never sees
the training loop: a slow sink slows the sender, never ``nbtrack.log``.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from nbtrack.run import Run


@dataclass
class MetricPoints:
    """Points of one metric from one batch, in the order logged.

    In the common case ``steps`` is a ``range`` (implicit, consecutive steps) and ``seconds``
    (the unix time of each point) is one array shared by every metric of the same ``log``
    calls, so the sender builds a batch without a Python-level loop over its points.
    """

    steps: range | array[int]
    values: array[float]
    seconds: array[float]


@dataclass
class Batch:
    """Everything a run logged since the previous batch."""

    metrics: dict[str, MetricPoints] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: list[tuple[Path, str | None]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.metrics or self.params or self.tags or self.artifacts)

    @property
    def point_count(self) -> int:
        return sum(len(points.values) for points in self.metrics.values())


class Sink(Protocol):
    def start(self, run: Run) -> None:
        """The run began; called before any update."""

    def update(self, run: Run, batch: Batch) -> None:
        """New data; ``run.curves`` already includes the batch's metrics."""

    def end(self, run: Run) -> None:
        """The run ended (``run.status`` says how) and every update has been delivered."""
