"""How a kernel starts the sync process of one of its sessions (``python -m
nbtrack.journal.worker``): its own process session, this very nbtrack on its path, its output
into ``worker.log``, the store's credentials in its environment and nowhere else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from nbtrack._files import open_private

__all__ = ["start_worker"]


def start_worker(folder: Path, credentials: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start the sync process of the session in ``folder``, with ``credentials`` (the store's
    user name and password, when the URI held them) added to this process's environment;
    its output goes to the session's ``worker.log``."""
    env = {**os.environ, **credentials}
    # The sync process must import this very nbtrack, also from a source checkout.
    package_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    with open_private(folder / "worker.log") as log:
        return subprocess.Popen(  # noqa: S603 - our own module, no shell
            [sys.executable, "-m", "nbtrack.journal.worker", str(folder)],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=log,
            env=env,
            # Its own session: a kernel interrupt (SIGINT to the group) or restart must not
            # take the upload down with it.
            start_new_session=True,
            close_fds=True,
        )
