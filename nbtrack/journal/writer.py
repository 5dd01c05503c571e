"""The kernel's writer of one run's journal, and what it reads back of the run's upload.

``Journal`` is one run's write-ahead file. The sender thread appends each batch to it (under the
run's drain lock, so there is one writer) before anything else sees the batch; a line is in the
operating system before the call returns, so a kernel killed right after loses nothing written.
What cannot be written (a full or read-only disk) is counted, told to the run, and carried by
the end line. The session folder it lives in, and the sync process that uploads it, are
``nbtrack.journal.session``.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbtrack._files import make_private_dir, open_private, private_copy, read_json
from nbtrack._model import Batch, Run
from nbtrack.journal.folders import (
    FILES_SUFFIX,
    STATE_SUFFIX,
    JournalError,
    keep_reserve,
    release_reserve,
)
from nbtrack.journal.format import encode, metrics_lines

if TYPE_CHECKING:
    from nbtrack.journal.session import SyncSession

__all__ = ["Journal", "JournalError", "Progress"]


@dataclass(frozen=True)
class Progress:
    """How far the sync process got with one run."""

    synced: bool  # everything is in the store and the run is ended there
    run_id: str | None
    experiment_id: str | None
    experiment_name: str | None  # as the store has it (the run may name only its id)
    run_info: dict[str, Any] | None  # the run as the store created it (tracking.run_info)
    acknowledged: int  # bytes of the journal the store has
    size: int  # bytes of the journal written so far
    problem: str | None  # why the store refused the run for good, if it did


class Journal:
    """One run's journal. Written by one thread at a time (the run's drain lock, or the main
    thread at cell start and end, when the sender does not touch the run)."""

    def __init__(self, session: SyncSession, run: Run) -> None:
        self.session = session
        self.path = session.new_spool()
        self.files = self.path.with_suffix(FILES_SUFFIX)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)
        except OSError as error:
            raise JournalError(_cannot_write(self.path.parent, error.strerror)) from error
        self._size = 0
        self._staged = 0
        self._ended = False
        self._end_line: dict[str, Any] | None = None
        # Points and other lines that could not be made durable (a full or read-only disk).
        self.lost_points = 0
        self.lost_items = 0
        self.write_problem: str | None = None
        start = {
            "t": "start",
            "experiment_name": run.experiment_name or run.fallback_experiment,
            "run_name": run.run_name,
            "start_time": run.start_time_ms,
            "tags": run.tags,
        }
        if run.parent_journal is not None:
            start["parent"] = run.parent_journal
        if run.fallback_experiment is not None:  # chosen by id: the sync process looks it up
            start["experiment_id"] = run.experiment_id
        if not self._write(start):
            # Without its first line the run could never be created: no run at all, and the
            # cell is told why, rather than a run that nobody can end.
            os.close(self._fd)
            self.path.unlink(missing_ok=True)
            raise JournalError(_cannot_write(self.path.parent, self.write_problem))
        keep_reserve(session.folder)
        self._run_id: str | None = None
        self._experiment_id: str | None = None
        self._experiment_name: str | None = None
        self._run_info: dict[str, Any] | None = None
        session.wake()

    # ------------------------------------------------------------------ written by the kernel

    def update(self, run: Run, batch: Batch) -> None:
        """Append the batch; what cannot be written is counted, and the run (its record, the
        live view) is told how much was lost and why."""
        for line, points in metrics_lines(batch.metrics):
            if not self._write(line):
                self.lost_points += points
        if batch.params and not self._write({"t": "p", "p": batch.params}):
            self.lost_items += len(batch.params)
        if batch.tags and not self._write({"t": "g", "g": batch.tags}):
            self.lost_items += len(batch.tags)
        for path, destination in batch.artifacts:
            if not self._write({"t": "a", "path": path, "dest": destination}):
                self.lost_items += 1
        for artifact in batch.deletions:
            if not self._write({"t": "x", "path": artifact}):
                self.lost_items += 1
        self.tell(run)

    def tell(self, run: Run) -> None:
        """Copy what could not be made durable onto the run, for its record."""
        run.lost_points, run.lost_items = self.lost_points, self.lost_items
        run.lost_reason = self.write_problem if self.lost_points or self.lost_items else None

    def stage(self, source: Path) -> str:
        """Copy a file or folder into the run's staging folder now (later changes to it are not
        uploaded); return its path there, for an ``a`` line."""
        self._staged += 1
        relative = f"artifact-{self._staged}/{source.name}"
        target = make_private_dir(self.files / f"artifact-{self._staged}") / source.name
        private_copy(source, target)
        return relative

    def stage_text(self, relative: str, text: str) -> bool:
        """Write a text file (code, environment) into the run's staging folder. False if it
        could not be written (it is then counted as lost, and nothing half-written stays)."""
        target = self.files / relative
        try:
            make_private_dir(target.parent)
            with open_private(target, "w") as out:
                out.write(text)
        except OSError as error:
            target.unlink(missing_ok=True)
            self.lost_items += 1
            self.write_problem = error.strerror or str(error)
            return False
        return True

    def end(self, run: Run) -> bool:
        """Write the end line (status, end time, what was lost). False if it could not be
        written yet: ``retry_end`` tries again (the sender does, while the kernel lives)."""
        self._end_line = {
            "t": "end",
            "status": run.status.value,
            "end_time": run.end_time_ms,
            "lost_points": self.lost_points,
            "lost_items": self.lost_items,
            "problem": self.write_problem,
        }
        return self.retry_end()

    def retry_end(self) -> bool:
        if self._ended:
            return True
        if self._end_line is None:
            return False
        # On a full disk the session's reserve makes room for the end line (and for the sync
        # process's last acknowledgements), so that the run can still be ended.
        if not self._write(self._end_line) and not (
            release_reserve(self.session.folder) and self._write(self._end_line)
        ):
            return False
        self._ended = True
        os.close(self._fd)
        self.session.wake()
        return True

    @property
    def ended(self) -> bool:
        return self._ended

    def _write(self, record: dict[str, Any]) -> bool:
        """Append one line; on failure take back whatever part of it reached the file, so the
        journal never holds a torn line, and remember why."""
        if self._ended:
            return False
        line = encode(record)
        data = memoryview(line)
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except OSError as error:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            self.write_problem = error.strerror or str(error)
            return False
        self._size += len(line)
        return True

    # ------------------------------------------------------------------ read from the sync side

    def progress(self) -> Progress:
        state = read_json(self.path.with_suffix(STATE_SUFFIX))
        done = state is None and read_json(self.path.with_suffix(".done"))
        if done:
            state = done
        state = state or {}
        self._run_id = state.get("run_id") or self._run_id
        self._experiment_id = state.get("experiment_id") or self._experiment_id
        self._experiment_name = state.get("experiment_name") or self._experiment_name
        self._run_info = state.get("run_info") or self._run_info
        synced = bool(done) or (self._ended and not self.path.exists())
        return Progress(
            synced=synced,
            run_id=self._run_id,
            experiment_id=self._experiment_id,
            experiment_name=self._experiment_name,
            run_info=self._run_info,
            acknowledged=int(state.get("offset", 0)),
            size=self._size,
            problem=state.get("problem"),
        )

    def wait_for_run_id(self, timeout: float) -> str | None:
        """The run's id in the store, waiting up to ``timeout`` for the sync process to create
        it; None at once if the store is unreachable or refused the run."""
        deadline = time.monotonic() + timeout
        while True:
            progress = self.progress()
            if progress.run_id is not None:
                return str(progress.run_id)
            if progress.problem is not None or self.session.store_problem() is not None:
                return None
            if time.monotonic() >= deadline:
                return None
            self.session.wake()
            time.sleep(0.01)

    @property
    def key(self) -> str:
        """The journal's name in its session folder, by which a child run names its parent."""
        return self.path.stem

    def pending_points(self, total: int) -> int:
        """About how many of the run's ``total`` points the store does not have yet."""
        progress = self.progress()
        if progress.synced or not progress.size:
            return 0
        left = max(0, progress.size - progress.acknowledged)
        return round(total * left / progress.size)


def _cannot_write(folder: Path, why: str | None) -> str:
    return (
        f"nbtrack cannot write the run's journal in {folder} ({why or 'write error'}), so it "
        "cannot track this cell; free some space there, or set NBTRACK_SPOOL_DIR to a writable "
        "folder with free space"
    )
