"""Files only their owner can read: nbtrack's journals, state and locks hold params, tags,
code and store addresses.

Folders are created 0700 and files 0600 whatever the umask, and a file or folder is trusted
(read back, replayed, written into) only if it belongs to this user, nobody else can write to it,
and nobody else can replace it: every folder above it (and above the targets of links on the
way) is root's or this user's, and writable by nobody else unless sticky, like ``/tmp``.
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
    "PrivateFolderError",
    "is_private",
    "make_private_dir",
    "open_private",
    "private_copy",
    "private_folder",
    "read_json",
    "touch_private",
    "why_not_private",
    "write_json_atomic",
]


# Links followed on the way to a folder before it counts as a loop (Linux's own limit).
_MAX_LINKS = 40


class PrivateFolderError(OSError):
    """nbtrack has no folder of its own to keep its files in; the message says why and which
    setting names another."""


def private_folder(path: Path, holds: str, setting: str) -> Path:
    """``path``, created private (``make_private_dir``), for nbtrack to keep ``holds`` in
    ("its journals"). Raises ``PrivateFolderError``, naming ``setting`` as the way out, if
    another user owns it, can write to it or can replace it (``why_not_private``); nothing is
    created inside another user's folders."""
    why = _why_replaceable(path.absolute().parent)
    if why is None:
        make_private_dir(path)
        why = why_not_private(path)
    if why is not None:
        msg = (
            f"nbtrack will not keep {holds} in {path}: {why}; set {setting} to a folder of "
            "your own that only you can write to, in folders only you or root can change"
        )
        raise PrivateFolderError(msg)
    return path


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
    """Whether ``path`` is a real folder or file of this user that no one else can write to or
    replace.

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
    if _others_can_write(info):
        return "other users can write to it"
    return _why_replaceable(path.absolute().parent)


def _why_replaceable(folder: Path, links: int = 0) -> str | None:
    """Why another user could replace what is in ``folder``, or ``folder`` itself: it, a folder
    above it, or one above the target of a link on the way, is another user's (root aside), or
    others can write to it and it is not sticky (a sticky folder, like ``/tmp``, lets them
    replace only their own entries, and each entry on the way is checked to be root's or ours).
    None if no one can, and without POSIX owners."""
    if not hasattr(os, "getuid"):
        return None
    for step in [*reversed(folder.parents), folder]:
        try:
            why = _why_step_unsafe(step, links)
        except OSError:
            return None  # not there yet (it will be ours), or unreadable (using it fails anyway)
        if why is not None:
            return why
    return None


def _why_step_unsafe(step: Path, links: int) -> str | None:
    info = step.lstat()
    if stat.S_ISLNK(info.st_mode):
        why = _why_link_unsafe(step, info, links)
        if why is not None:
            return why
        info = step.stat()
    if info.st_uid not in (0, os.getuid()):
        return f"{step} above it belongs to another user (uid {info.st_uid})"
    if _others_can_write(info) and not info.st_mode & stat.S_ISVTX:
        return f"other users can write to {step} above it, and replace what is in it"
    return None


def _why_link_unsafe(link: Path, info: os.stat_result, links: int) -> str | None:
    if info.st_uid not in (0, os.getuid()):
        return f"{link} above it is a link of another user (uid {info.st_uid})"
    if links >= _MAX_LINKS:
        return f"{link} above it is a loop of links"
    # Whoever can change a folder on the way to the link's target can swap the target.
    return _why_replaceable(link.parent / os.readlink(link), links + 1)


def _others_can_write(info: os.stat_result) -> bool:
    """Whether someone other than the owner can write to the file or folder ``info`` is of.
    A group of this user alone (a "user private group", where umask 002 is the default) does
    not count, as Debian's OpenSSH does not count it for ``~/.ssh``."""
    if info.st_mode & stat.S_IWOTH:
        return True
    return bool(info.st_mode & stat.S_IWGRP) and not _only_ours(info.st_gid)


def _only_ours(gid: int) -> bool:
    """Whether group ``gid`` has this user as its one member: named after the user (a user
    private group), no one else listed in it, no other user with it as primary group."""
    try:
        import grp
        import pwd

        me = pwd.getpwuid(os.getuid())
        group = grp.getgrgid(gid)
        others = [
            user for user in pwd.getpwall() if user.pw_gid == gid and user.pw_uid != me.pw_uid
        ]
    except (ImportError, KeyError):
        return False
    return group.gr_name == me.pw_name and set(group.gr_mem) <= {me.pw_name} and not others


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
