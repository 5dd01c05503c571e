"""Which run is a run's parent, when the kernel could not know its id.

A sweep's trials start before the sync process has created their parent run in the store, so
a trial's journal names its parent by the parent's journal (``"parent": KEY`` in its ``start``
line, KEY being the parent journal's name in the same session folder). The sync process
resolves that name to the parent's run id when it creates the trial, creating the parent first
if it has not yet, and tags the trial ``mlflow.parentRunId`` so that MLflow nests it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from nbtrack._files import read_json
from nbtrack.journal.folders import SPOOL_SUFFIX, STATE_SUFFIX

if TYPE_CHECKING:
    from nbtrack.journal.upload import RunUploader

__all__ = ["DONE_SUFFIX", "ParentNotReady", "parent_run_id"]

log = logging.getLogger("nbtrack.sync")

DONE_SUFFIX = ".done"
# A journal's name: never a path, so that a start line cannot point outside its folder.
_KEY = re.compile(r"[A-Za-z0-9_-]{1,100}")


class ParentNotReady(Exception):
    """The parent run is not in the store yet (the store is down, or refused it for now)."""


def parent_run_id(
    folder: Path, key: str, uploader_for: Callable[[Path], RunUploader]
) -> str | None:
    """The store's id of the run whose journal is ``key`` in ``folder``: created now if it is
    not yet; read back from its progress files once its journal is done. None for a parent
    that is nowhere (its journal was removed by hand): the child is then created on its own.
    Raises ``ParentNotReady`` while the parent cannot be created yet."""
    if not _KEY.fullmatch(key):
        log.warning("journal names its parent %r, which is not a journal name; ignored", key)
        return None
    spool = folder / f"{key}{SPOOL_SUFFIX}"
    if spool.exists():
        uploader = uploader_for(spool)
        if uploader.create() and uploader.run_id is not None:
            return uploader.run_id
        raise ParentNotReady(f"the parent run ({key}) is not in the store yet")
    for suffix in (STATE_SUFFIX, DONE_SUFFIX):
        state = read_json(folder / f"{key}{suffix}") or {}
        if state.get("run_id"):
            return str(state["run_id"])
    log.warning("the parent journal %s is gone; its child run is created without a parent", key)
    return None
