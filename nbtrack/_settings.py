"""Every ``NBTRACK_*`` environment variable: read, typed and validated here, and only here.

``settings()`` gives the values in effect now. A bad value never breaks a cell or the sync
process: it is replaced by the default, with one warning that names the variable, the value and
the default (repeated only if the value changes). The README's configuration table is made from
``VARIABLES`` (``markdown_table()``), and a test checks that the two agree.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbtrack._files import PrivateFolderError
from nbtrack.errors import NbtrackWarning

__all__ = [
    "RUN_JOURNAL",
    "VARIABLES",
    "Settings",
    "cache_dir",
    "markdown_table",
    "settings",
    "share_run_journal",
    "state_root",
]


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, how to read it, and what it means."""

    name: str
    field: str
    parse: Callable[[str], Any]
    default: Any
    shown_default: str
    meaning: str
    expects: str


# The longest wait a setting may ask for: a day, far under what a thread can wait
# (threading.TIMEOUT_MAX, ~292 years) or a clock can add (1e10 s made the sender's
# Event.wait overflow time_t, and its thread died).
LONGEST_SECONDS = 86_400


def _seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or not 0 <= value <= LONGEST_SECONDS:
        raise ValueError(text)
    return value


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value == 0:
        raise ValueError(text)
    return value


def _share(text: str) -> float | None:
    if text.strip().lower() in ("", "auto"):
        return None
    value = float(text)
    if not 0 < value <= 1:
        raise ValueError(text)
    return value


def _nice(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 19:
        raise ValueError(text)
    return value


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _switch(text: str) -> bool | None:
    lowered = text.strip().lower()
    if lowered in ("", "auto"):
        return None
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(text)


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        lowered = text.strip().lower()
        if lowered not in choices:
            raise ValueError(text)
        return lowered

    return parse


def _text(text: str) -> str | None:
    return text.strip() or None


def _path(text: str) -> Path | None:
    if not text.strip():
        return None
    try:
        return Path(text).expanduser()
    except (RuntimeError, KeyError) as error:  # ~user that does not exist; ~ without a home
        raise ValueError(text) from error


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "NBTRACK_END_WAIT", "end_wait", _seconds, None, "auto",
        "seconds a tracked cell's end waits for the upload before it returns. auto: 0 where a "
        "person watches (JupyterLab, VS Code: the record then updates itself in place once "
        "everything is stored), 60 in headless runs (nbclient, papermill, nbconvert), so that "
        "the saved notebook ends with final records",
        "a number of seconds from 0 to 86400",
    ),
    Variable(
        "NBTRACK_SYNC_CPU_SHARE", "sync_cpu_share", _share, None, "auto",
        "share of one CPU core the upload of a run may use while its cell still executes (the "
        "newest point of each metric goes ahead every second whatever the share, so the MLflow "
        "UI is a second or two behind). auto: the CPU the machine leaves idle beyond one core, "
        "measured every second, from a whole core down to 5 % (a 2-core machine, or every core "
        "busy: the loop comes first, the rest uploads at full speed when the cell ends). A "
        "number fixes the share (1: no pacing)",
        "auto or a number in (0, 1]",
    ),
    Variable(
        "NBTRACK_FLUSH_INTERVAL", "flush_interval", _positive_seconds, 0.5, "0.5",
        "seconds between the sender's batches (what a kernel killed outright can lose)",
        "a number of seconds above 0, up to 86400",
    ),
    Variable(
        "NBTRACK_PLOT_INTERVAL", "plot_interval", _seconds, 0.5, "0.5",
        "minimum seconds between live view redraws",
        "a number of seconds from 0 to 86400",
    ),
    Variable(
        "NBTRACK_LIVE_PLOT", "live_view", _switch, None, "auto",
        "`0`/`1` turns the live view off/on (auto: on under JupyterLab and VS Code, off under "
        "nbclient, papermill, nbconvert)",
        "0, 1 or auto",
    ),
    Variable(
        "NBTRACK_SPOOL_DIR", "spool_dir", _path, None, "`~/.cache/nbtrack/spool`",
        "where run journals (spools) live until they are uploaded",
        "a folder path (~ or ~user only where that user exists)",
    ),
    Variable(
        "NBTRACK_STATE_DIR", "state_dir", _path, None, "`~/.cache/nbtrack`",
        "where nbtrack keeps the addresses of the MLflow UIs it started (`ui/`) and its locks "
        "(`locks/`)",
        "a folder path (~ or ~user only where that user exists)",
    ),
    Variable(
        "NBTRACK_RETRY_MAX_S", "retry_max_s", _positive_seconds, 30.0, "30",
        "longest pause between upload retries while the store is down",
        "a number of seconds above 0, up to 86400",
    ),
    Variable(
        "NBTRACK_EXIT_WAIT", "exit_wait", _seconds, 30.0, "30",
        "seconds kernel shutdown waits for uploads (the sync process finishes them anyway)",
        "a number of seconds from 0 to 86400",
    ),
    Variable(
        "NBTRACK_SYNC_NICE", "sync_nice", _nice, 10, "10",
        "niceness of the sync process, so that the training loop gets the CPU first",
        "an integer from 0 to 19",
    ),
    Variable(
        "NBTRACK_SYNC_TIMEOUT", "sync_timeout", _seconds, 60.0, "60",
        "seconds `nbtrack sync` keeps retrying an unreachable store before it keeps the spool "
        "for a later try",
        "a number of seconds from 0 to 86400",
    ),
    Variable(
        "NBTRACK_SYSTEM_METRICS", "system_metrics", _seconds, 10.0, "10",
        "seconds between samples of the system metrics (CPU, memory, disk, network, and GPU "
        "utilisation, memory and power where NVML answers), taken by MLflow's monitor in the "
        "sync process while a tracked cell runs and logged as `system/...`; 0 turns them off",
        "a number of seconds from 0 to 86400",
    ),
    Variable(
        "NBTRACK_NOTEBOOK", "notebook", _text, None, "",
        "the notebook's path, where the frontend does not tell the kernel",
        "a path (~ or ~user only where that user exists)",
    ),
    Variable(
        "NBTRACK_OTHER_PROCESSES", "other_processes", _choice("keep", "drop"), "keep", "keep",
        "what happens to `nbtrack.log` in the other processes of a tracked cell (forked or "
        "spawned workers, DataLoader workers, torch.distributed ranks other than 0): `keep` "
        "stores their points in the cell's run under `rank<r>/` or `process<n>/`; `drop` drops "
        "them, with one warning per process",
        "keep or drop",
    ),
    Variable(
        "NBTRACK_RUN_JOURNAL", "run_journal", _path, None, "",
        "set by nbtrack itself while a tracked cell runs (not for you to set): the run's "
        "journal, through which the processes the cell starts log into its run",
        "a path (~ or ~user only where that user exists)",
    ),
)  # fmt: skip

# Set by nbtrack in the kernel's environment while a tracked cell runs (see ``share_run``).
RUN_JOURNAL = "NBTRACK_RUN_JOURNAL"


@dataclass(frozen=True)
class Settings:
    """The values in effect; ``None`` means automatic (see each variable's meaning)."""

    end_wait: float | None
    sync_cpu_share: float | None
    flush_interval: float
    plot_interval: float
    live_view: bool | None
    spool_dir: Path | None
    state_dir: Path | None
    retry_max_s: float
    exit_wait: float
    sync_nice: int
    sync_timeout: float
    system_metrics: float
    notebook: str | None
    other_processes: str
    run_journal: Path | None


_lock = threading.Lock()
_cached: tuple[tuple[str | None, ...], Settings] | None = None
_warned: set[tuple[str, str]] = set()


def settings() -> Settings:
    """The settings as the environment says now (parsed again only when it changed)."""
    global _cached  # noqa: PLW0603 - a cache of one value
    raw = tuple(os.environ.get(variable.name) for variable in VARIABLES)
    with _lock:
        if _cached is not None and _cached[0] == raw:
            return _cached[1]
        values = {
            variable.field: _parse(variable, text)
            for variable, text in zip(VARIABLES, raw, strict=True)
        }
        current = Settings(**values)
        _cached = (raw, current)
        return current


def _parse(variable: Variable, text: str | None) -> Any:
    if text is None:
        return variable.default
    try:
        return variable.parse(text)
    except ValueError:
        if (variable.name, text) not in _warned:
            _warned.add((variable.name, text))
            shown = variable.shown_default.strip("`") or "unset"
            warnings.warn(
                f"nbtrack: {variable.name}={text!r} is not {variable.expects}; using the "
                f"default ({shown}). Set it to a valid value or unset it.",
                NbtrackWarning,
                stacklevel=4,
            )
        return variable.default


def share_run_journal(path: Path | None) -> None:
    """Tell the processes a tracked cell starts (they inherit the environment) which run's
    journal they log into; None when the cell ends."""
    if path is None:
        os.environ.pop(RUN_JOURNAL, None)
    else:
        os.environ[RUN_JOURNAL] = str(path)


def _after_fork_in_child() -> None:
    # The lock may have been held by another thread at the fork, which does not exist here.
    global _lock  # noqa: PLW0603
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/nbtrack``, else ``~/.cache/nbtrack``: the default home of nbtrack's files.

    A relative ``XDG_CACHE_HOME`` is ignored, as the XDG spec asks (it would put nbtrack's files
    in whatever folder a kernel started in). Raises ``PrivateFolderError`` when there is no home
    folder: HOME unset and a uid without a user database entry, as in some containers.
    """
    cache = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(cache):
        return Path(cache) / "nbtrack"
    try:
        home = Path.home()
    except (RuntimeError, KeyError) as error:
        raise PrivateFolderError(_no_home()) from error
    if not home.is_absolute():
        raise PrivateFolderError(_no_home())
    return home / ".cache" / "nbtrack"


def state_root() -> Path:
    """``$NBTRACK_STATE_DIR``, else ``cache_dir()``: where the MLflow UI registry (``ui/``) and
    the locks (``locks/``) live."""
    return settings().state_dir or cache_dir()


def _no_home() -> str:
    uid = os.getuid() if hasattr(os, "getuid") else "?"
    return (
        "nbtrack has no folder for its files: they go in ~/.cache/nbtrack, but HOME is not set "
        f"(or not an absolute path) and user id {uid} has no entry in the user database; set "
        "HOME or XDG_CACHE_HOME to a folder of your own, or NBTRACK_SPOOL_DIR (journals) and "
        "NBTRACK_STATE_DIR (MLflow UI addresses, locks)"
    )


def markdown_table() -> str:
    """The README's configuration table, made from ``VARIABLES``."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for variable in VARIABLES:
        default = variable.shown_default
        if default and not default.startswith("`"):
            default = f"`{default}`"
        rows.append(f"| `{variable.name}` | {default} | {variable.meaning} |")
    return "\n".join(rows) + "\n"
