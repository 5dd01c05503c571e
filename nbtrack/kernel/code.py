"""The code and environment a run keeps as artifacts, secrets redacted.

- ``code/cell.py``: the tracked cell;
- ``code/session_history.py``: every cell executed in the kernel before it, in order;
- ``environment/environment.json`` and ``environment/requirements.txt``: Python, OS, CPU/GPU,
  key package versions and the full package list.

Redacting a long session again for every tracked cell would grow with the session, so each
earlier cell is redacted once and kept, with the secret values found in it: a failure's
message and traceback are redacted with those (``known_secrets``), not only by pattern. The
environment is read once per kernel, in the background, when nbtrack loads.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from nbtrack._redact import is_secret_name, redact_cell, replace_values

if TYPE_CHECKING:
    from nbtrack.journal.writer import Journal

__all__ = ["CodeRecorder", "environment_files", "start_reading_environment"]

# Values shorter than this, held by a credential-named variable, are not hunted for in
# tracebacks: they would match ordinary words.
_SHORTEST_SECRET = 4
# How far into a credential-named container its texts are looked for: a config or a parsed
# secrets file, not a data set someone named `tokens`.
_DEEPEST = 4
_MOST_ITEMS = 1000


class CodeRecorder:
    """Redacted copies of the session's cells, made once each, the secrets found in them, and
    the variables they use as credentials without naming them so."""

    def __init__(self) -> None:
        self._redacted: list[str] = []
        self.secrets: set[str] = set()
        self.variables: set[str] = set()

    def session_history(self, shell: Any) -> str:
        """Cells executed in this kernel before the current one, in order, redacted; a secret
        found in any cell is hidden in every other one too."""
        raw = list(getattr(shell.history_manager, "input_hist_raw", []))
        earlier = raw[1:-1]  # [0] is empty by IPython's convention; [-1] is the current cell
        for cell in earlier[len(self._redacted) :]:
            self._redacted.append(self._redact(cell) if cell.strip() else "")
        parts = [
            f"# [{number}]\n{text}"
            for number, text in enumerate(self._redacted[: len(earlier)], 1)
            if text
        ]
        return self._scrubbed("\n\n".join(parts) + "\n", shell)

    def stage(self, journal: Journal, shell: Any, body: str) -> bool:
        """Write the cell and the session history into the run's staging folder; False if
        either could not be written (the journal counts it as lost)."""
        cell = self._redact(body)  # first, so that its secrets are hidden in earlier cells too
        history = self.session_history(shell)
        staged = journal.stage_text("code/cell.py", self._scrubbed(cell, shell))
        return journal.stage_text("code/session_history.py", history) and staged

    def _redact(self, cell: str) -> str:
        try:
            redacted = redact_cell(cell)
        except Exception:  # noqa: BLE001 - a cell nbtrack cannot read must not stop the run
            return "# nbtrack could not read this cell to redact it, so it is not kept\n"
        self.secrets |= redacted.secrets
        self.variables |= redacted.variables
        return redacted.text

    def _scrubbed(self, text: str, shell: Any) -> str:
        """``text`` without the secrets written in any cell, nor the values of variables a
        cell used as credentials (``tok = "..."`` in one cell, ``login(token=tok)`` in a
        later one)."""
        namespace = getattr(shell, "user_ns", None) or {}
        values = {t for name in self.variables for t in _texts(namespace.get(name))}
        return replace_values(text, self.secrets | values)

    def known_secrets(self, namespace: dict[str, Any]) -> set[str]:
        """Secret values this kernel is known to hold: those written in its cells, and the
        values of its credential-named variables and environment variables (read from a
        file or the environment, they appear in no cell), of the variables its cells use as
        credentials, and every text inside such a value (``secrets = json.load(...)``)."""
        known = set(self.secrets)
        for names in (namespace, os.environ):
            for name, value in list(names.items()):
                if names is os.environ and name in _SHELL_FOLDERS:
                    continue
                if not name.startswith("_") and (name in self.variables or is_secret_name(name)):
                    known.update(_texts(value))
        return known


# Environment variables with a credential's part (pwd) that the shell sets to its working
# folders: taken for secrets, every path in a traceback would lose its folder.
_SHELL_FOLDERS = frozenset({"PWD", "OLDPWD"})


def _texts(value: Any, depth: int = 0) -> Iterator[str]:
    """The texts of a secret value: itself, decoded bytes, and the values of its dicts and
    items of its lists, tuples and sets (a few levels down, a bounded number of each), long
    enough to be found in free text without matching ordinary words."""
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        if len(value) >= _SHORTEST_SECRET:
            yield value
        return
    if depth >= _DEEPEST:
        return
    if isinstance(value, dict | list | tuple | set | frozenset):
        items = value.values() if isinstance(value, dict) else value
        for item in itertools.islice(items, _MOST_ITEMS):
            yield from _texts(item, depth + 1)


_environment: tuple[str, str] | None = None
_ready = threading.Event()
_started = False
_lock = threading.Lock()


def start_reading_environment() -> None:
    """Read the environment in a background thread, once per kernel: listing every installed
    package takes a while and must not delay the first tracked cell."""
    global _started  # noqa: PLW0603 - once per kernel
    with _lock:
        if _started:
            return
        _started = True
    threading.Thread(target=_read, name="nbtrack-environment", daemon=True).start()


def _read() -> None:
    global _environment  # noqa: PLW0603 - computed once per kernel: the environment rarely changes
    try:
        from nbtrack.kernel.context import environment_json, requirements

        _environment = (environment_json(), requirements())
    finally:
        _ready.set()


def environment_files(timeout: float = 30.0) -> tuple[str, str] | None:
    """(environment.json, requirements.txt), waiting for the background read if needed."""
    start_reading_environment()
    _ready.wait(timeout)
    return _environment
