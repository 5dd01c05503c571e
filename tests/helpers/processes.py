"""Processes for tests about liveness: the pid of one that has ended."""

from __future__ import annotations

import os


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped): a kernel that died."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid
