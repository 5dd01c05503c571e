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

import os
import threading
from typing import TYPE_CHECKING, Any

from nbtrack._redact import is_secret_name, redact_cell

if TYPE_CHECKING:
    from nbtrack.journal.writer import Journal

__all__ = ["CodeRecorder", "environment_files", "start_reading_environment"]

# Values shorter than this, held by a credential-named variable, are not hunted for in
# tracebacks: they would match ordinary words.
_SHORTEST_SECRET = 4


class CodeRecorder:
    """Redacted copies of the session's cells, made once each, and the secrets found in them."""

    def __init__(self) -> None:
        self._redacted: list[str] = []
        self.secrets: set[str] = set()

    def session_history(self, shell: Any) -> str:
        """Cells executed in this kernel before the current one, in order, redacted."""
        raw = list(getattr(shell.history_manager, "input_hist_raw", []))
        earlier = raw[1:-1]  # [0] is empty by IPython's convention; [-1] is the current cell
        for cell in earlier[len(self._redacted) :]:
            self._redacted.append(self._redact(cell) if cell.strip() else "")
        parts = [
            f"# [{number}]\n{text}"
            for number, text in enumerate(self._redacted[: len(earlier)], 1)
            if text
        ]
        return "\n\n".join(parts) + "\n"

    def stage(self, journal: Journal, shell: Any, body: str) -> bool:
        """Write the cell and the session history into the run's staging folder; False if
        either could not be written (the journal counts it as lost)."""
        cell = journal.stage_text("code/cell.py", self._redact(body))
        return journal.stage_text("code/session_history.py", self.session_history(shell)) and cell

    def _redact(self, cell: str) -> str:
        try:
            redacted = redact_cell(cell)
        except Exception:  # noqa: BLE001 - a cell nbtrack cannot read must not stop the run
            return "# nbtrack could not read this cell to redact it, so it is not kept\n"
        self.secrets |= redacted.secrets
        return redacted.text

    def known_secrets(self, namespace: dict[str, Any]) -> set[str]:
        """Secret values this kernel is known to hold: those written in its cells, and the
        values of its credential-named variables and environment variables (read from a
        file or the environment, they appear in no cell)."""
        known = set(self.secrets)
        for names in (namespace, os.environ):
            known.update(
                value
                for name, value in list(names.items())
                if isinstance(value, str)
                and len(value) >= _SHORTEST_SECRET
                and not name.startswith("_")
                and is_secret_name(name)
            )
        return known


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
