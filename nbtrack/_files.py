"""Files only their owner can read: nbtrack's journals, state and locks hold params, tags,
code and store addresses.

Folders are created 0700 and files 0600 whatever the umask, and a file or folder is trusted
(read back, replayed) only if it belongs to this user and nobody else can write to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import IO, Any

__all__ = [
    "is_private",
    "make_private_dir",
    "open_private",
    "private_copy",
    "read_json",
    "touch_private",
    "why_not_private",
    "write_json_atomic",
]


def make_private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents as 0700 whatever the umask, and make ``path``
    0700 if it existed and is this user's. A shared folder (sticky, like ``/tmp``) is left as
    it is: ``is_private`` then refuses it, and nbtrack does not use it."""
    missing = []
    folder = path
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(folder, 0o700)  # mkdir's mode is cut by the umask
    with contextlib.suppress(OSError):
        info = path.lstat()
        if (
            stat.S_ISDIR(info.st_mode)
            and not info.st_mode & stat.S_ISVTX
            and (not hasattr(os, "getuid") or info.st_uid == os.getuid())
        ):
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
    return why_not_private(path) is None


def why_not_private(path: Path) -> str | None:
    """Why ``path`` is not private (``is_private``), in words; None if it is."""
    try:
        info = path.lstat()
    except OSError as error:
        return f"it cannot be read ({error.strerror or error})"
    if stat.S_ISLNK(info.st_mode):
        return "it is a symbolic link"
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return f"it belongs to another user (uid {info.st_uid})"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "other users can write to it"
    return None


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


def touch_private(path: Path) -> None:
    """Create an empty file 0600 (or leave it as it is)."""
    open_private(path).close()


def private_copy(source: Path, target: Path) -> None:
    """Copy a file or a folder to ``target`` as this user's private files: folders 0700,
    files 0600. Links are followed at copy time (the copy holds what the user logged, not a
    link that could later point elsewhere); dangling ones are skipped."""
    if source.is_dir():
        shutil.copytree(source, target, symlinks=False, ignore_dangling_symlinks=True,
                        copy_function=shutil.copyfile)  # fmt: skip
        for folder, _, files in os.walk(target):
            os.chmod(folder, 0o700)
            for name in files:
                os.chmod(Path(folder) / name, 0o600)
    else:
        with source.open("rb") as src, open_private(target, "wb") as out:
            shutil.copyfileobj(src, out)
        with contextlib.suppress(OSError):
            shutil.copystat(source, target)
            os.chmod(target, 0o600)
