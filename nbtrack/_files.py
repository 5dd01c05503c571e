"""Files only their owner can read: nbtrack's journals, state and locks hold params, tags,
code and store addresses.

Folders are created 0700 and files 0600 whatever the umask, and a file or folder is trusted
(read back, replayed) only if it belongs to this user and nobody else can write to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Any

__all__ = ["is_private", "make_private_dir", "open_private", "read_json", "write_json_atomic"]


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as 0700, and make it 0700 if it existed."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(PermissionError):  # not ours: is_private will refuse it
        os.chmod(path, 0o700)
    return path


def open_private(path: Path, mode: str = "ab") -> IO[Any]:
    """Open ``path`` for writing, created 0600 whatever the umask."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o600)
    return os.fdopen(fd, mode)


def is_private(path: Path) -> bool:
    """Whether ``path`` is a real folder or file of this user that no one else can write.

    A journal is trusted input: it names a tracking store and files to upload. One planted by
    another local user must never be replayed.
    """
    try:
        info = path.lstat()
    except OSError:
        return False
    if stat.S_ISLNK(info.st_mode):
        return False
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return False
    return not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def write_json_atomic(path: Path, content: dict[str, Any]) -> None:
    """Replace ``path`` so that a reader (or a crash) sees the old or the new file, never half;
    the temporary file is removed if writing fails (a full disk must not leave litter)."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(content, out)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        with path.open() as handle:
            content = json.load(handle)
    except (OSError, ValueError):
        return None
    return content if isinstance(content, dict) else None
