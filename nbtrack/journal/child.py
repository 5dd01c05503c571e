"""``nbtrack.log`` in the other processes of a tracked cell: one run per cell, whoever logs.

A tracked cell may start processes that log: a ``torch.multiprocessing.spawn`` job, ``torchrun``
from a shell-out, a ``multiprocessing`` pool, DataLoader workers, a plain ``os.fork()``. They
all log into the cell's run, and none of them creates a run of its own:

- The kernel tells the processes it starts where the run's journal is: ``NBTRACK_RUN_JOURNAL``
  is in its environment while the cell runs (``share``), and a forked child knows it from its
  parent's memory (``os.register_at_fork``, which costs nothing until a fork).
- Such a process's first ``nbtrack.log`` (``attach``) opens a journal of its own beside the
  run's (``<run>.<n>.child``) and starts a sender thread, exactly as in the kernel: its later
  calls cost what they cost on the kernel's side.
- Its metrics are named for where they come from: a torch.distributed rank r > 0 logs
  ``rank<r>/<name>``, any other process ``process<n>/<name>`` (n: 1, 2, ... in the order they
  first logged); rank 0 owns the run and logs plain names. The run's tag
  ``nbtrack.processes.<rank<r>|process<n>>`` says which process that was.
- The kernel's sync process uploads those journals into the run, before it ends the run.
- ``NBTRACK_OTHER_PROCESSES=drop`` drops the points of every process but rank 0, with one
  warning per process; so does a process that cannot reach the journal (another machine), and
  one that logs after the run ended.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from nbtrack import _registry, _sender
from nbtrack._buffer import Buffer
from nbtrack._files import is_private, read_json
from nbtrack._model import Batch, Run
from nbtrack._registry import TrackedRun
from nbtrack._settings import settings, share_run_journal
from nbtrack.errors import NbtrackWarning, NoActiveRunError
from nbtrack.journal.folders import CHILD_SUFFIX
from nbtrack.journal.format import encode, metrics_lines, run_ended

__all__ = ["ChildJournal", "attach", "share", "unshare"]

# The journal of the run this process logs into: remembered at a fork (``_before_fork``, in the
# parent), so that the child knows it without the parent's registry.
_run_at_fork: Path | None = None
# This process's own journal once it logged (a forked child never inherits its parent's).
_mine: TrackedRun | None = None


def share(journal: Path) -> None:
    """The kernel: processes started from now on log into the run of ``journal``."""
    share_run_journal(journal)


def unshare() -> None:
    """The kernel: the cell ended; processes started from now on have no run to log into."""
    share_run_journal(None)


def attach(what: str) -> Buffer:
    """The buffer this process logs into: its own journal of the run of the tracked cell that
    started it. Raises NoActiveRunError where there is no such run (outside a tracked cell)."""
    global _mine  # noqa: PLW0603 - one journal per process
    if _mine is not None:  # logged before, and its buffer was swapped out (the run ended)
        raise NoActiveRunError(what)
    spool = _run_at_fork or settings().run_journal
    if spool is None or not _logs_elsewhere(spool):
        raise NoActiveRunError(what)
    if _run_at_fork is not None:
        # A forked child shares the kernel's heap copy-on-write. Its collector would scan all
        # of it at every full collection, which the buffer's short-lived points trigger often,
        # and copy every page it touches: a log call cost 2.5x the kernel's (bench_ranks.py).
        # Frozen, the inherited objects are left alone (Python's advice for forked workers);
        # what the child itself allocates is collected as usual.
        gc.freeze()
    rank = _rank()
    if settings().other_processes == "drop" and rank != 0:
        journal: Any = _Dropped(f"NBTRACK_OTHER_PROCESSES=drop ({_describe(rank)})")
    elif not spool.exists() or not is_private(spool.parent) or run_ended(spool):
        journal = _Dropped(f"its tracked cell's run ({spool.name}) cannot be reached from here")
    else:
        try:
            journal = ChildJournal(spool, rank)
        except OSError as error:
            journal = _Dropped(f"its journal cannot be written ({error.strerror or error})")
    tracked = _mine = TrackedRun(
        run=Run(run_name=spool.stem, experiment_name="", tracking_uri=""),
        buffer=Buffer(),
        journal=journal,
    )
    tracked.buffer.overflow = lambda: _sender.drain(tracked)
    _registry.serve(tracked)
    _sender.ensure_sender()
    _flush_at_exit(tracked)
    return tracked.buffer


def _logs_elsewhere(spool: Path) -> bool:
    """Whether this process is not the kernel that owns the run (whose own log calls go to the
    cell's buffer, and which is never a child of itself)."""
    session = read_json(spool.parent / "session.json") or {}
    return session.get("kernel_pid") != os.getpid()


def _rank() -> int | None:
    """This process's torch.distributed rank: from an initialised process group, else from
    ``RANK`` (torchrun sets it); None outside a distributed job."""
    dist = sys.modules.get("torch.distributed")
    with contextlib.suppress(Exception):  # a half-initialised torch: no rank then
        if dist is not None and dist.is_available() and dist.is_initialized():
            return int(dist.get_rank())
    text = os.environ.get("RANK", "")
    return int(text) if text.isdigit() else None


def _describe(rank: int | None) -> str:
    parts = [f"pid {os.getpid()}"]
    if rank is not None:
        parts.append(f"torch.distributed rank {rank}")
    data = sys.modules.get("torch.utils.data")
    info = None
    with contextlib.suppress(Exception):
        info = data.get_worker_info() if data is not None else None
    if info is not None:
        parts.append(f"DataLoader worker {info.id}")
    return ", ".join(parts)


class ChildJournal:
    """This process's journal of the run: ``<run>.<n>.child`` beside the run's own journal, with
    the same line format, and metric names under this process's prefix."""

    def __init__(self, spool: Path, rank: int | None) -> None:
        self.spool = spool
        number = 1
        while True:  # the first free number: processes are numbered in the order they log
            path = spool.with_name(f"{spool.stem}.{number}{CHILD_SUFFIX}")
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
                break
            except FileExistsError:
                number += 1
        self.path = path
        name = f"process{number}" if rank is None else f"rank{rank}"
        self.prefix = "" if rank == 0 else f"{name}/"
        self._told = False
        self._write({"t": "child", "name": name, "process": _describe(rank)})

    def update(self, run: Run, batch: Batch) -> None:  # noqa: ARG002 - the Output protocol
        if run_ended(self.spool) or not self.spool.exists():
            self._tell(
                f"nbtrack: the run of the tracked cell that started this process "
                f"({_describe(None)}) has ended; points this process logs now are dropped"
            )
            return
        prefix = self.prefix
        if batch.metrics:
            metrics = (
                batch.metrics if not prefix else {prefix + k: v for k, v in batch.metrics.items()}
            )
            for line, _ in metrics_lines(metrics):
                self._write(line)
        if batch.tags:
            tags = {
                k.replace("nbtrack.nonfinite.", f"nbtrack.nonfinite.{prefix}"): v
                for k, v in batch.tags.items()
            }
            self._write({"t": "g", "g": tags})

    def end(self) -> None:
        with contextlib.suppress(OSError):
            self._write({"t": "end"})
            os.close(self._fd)

    def _write(self, record: dict[str, Any]) -> None:
        data = memoryview(encode(record))
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except OSError as error:
            self._tell(f"nbtrack: this process ({_describe(None)}) cannot write its journal "
                       f"({error.strerror or error}); its points are dropped")  # fmt: skip

    def _tell(self, message: str) -> None:
        if not self._told:
            self._told = True
            warnings.warn(message, NbtrackWarning, stacklevel=2)


class _Dropped:
    """Where the points of a process go that does not log into the run: nowhere, said once."""

    def __init__(self, why: str) -> None:
        warnings.warn(
            f"nbtrack: points logged in this process ({_describe(None)}) are dropped: {why}",
            NbtrackWarning,
            stacklevel=4,
        )

    def update(self, run: Run, batch: Batch) -> None:
        pass

    def end(self) -> None:
        pass


def _flush_at_exit(tracked: TrackedRun) -> None:
    """Everything this process logged reaches its journal when it exits: at interpreter exit
    (spawned processes, torchrun ranks) and in multiprocessing's own exit of a forked worker
    (which leaves with ``os._exit``, skipping ``atexit``)."""

    done: list[bool] = []
    owner = os.getpid()

    def flush() -> None:
        # Both hooks may run (a spawned multiprocessing worker); and a process this one forks
        # inherits them, but not this journal, which is this process's alone.
        if done or os.getpid() != owner:
            return
        done.append(True)
        # No nbtrack thread may run into interpreter shutdown (see _sender.stop_sender): the
        # sender ends first, then what it had not taken yet is drained here.
        _sender.stop_sender()
        with contextlib.suppress(Exception):
            _sender.drain(tracked)
        tracked.journal.end()

    atexit.register(flush)
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        util.Finalize(None, flush, exitpriority=100)


def _before_fork() -> None:
    global _run_at_fork  # noqa: PLW0603
    current = _registry.current()
    if current is not None and not current.run.ended:
        _run_at_fork = current.journal.path
    elif _mine is not None and isinstance(_mine.journal, ChildJournal):
        _run_at_fork = _mine.journal.spool
    else:
        _run_at_fork = None


def _after_fork_in_child() -> None:
    global _mine  # noqa: PLW0603 - the parent's journal is the parent's
    _mine = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
