"""Stand-ins for the outputs of a run, for unit tests: they keep what they are given."""

from __future__ import annotations

from nbtrack._model import Batch, Run


class Recorder:
    """A journal stand-in that keeps every batch the sender delivers."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []

    def update(self, run: Run, batch: Batch) -> None:  # noqa: ARG002 - the Output protocol
        self.batches.append(batch)

    def points(self, key: str) -> list[tuple[int, float]]:
        return [
            (step, value)
            for batch in self.batches
            if key in batch.metrics
            for step, value in zip(batch.metrics[key].steps, batch.metrics[key].values, strict=True)
        ]
