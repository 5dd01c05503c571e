"""The command line (`nbtrack ui`, `nbtrack show`) says what is wrong in one line, never with a
traceback, whatever the environment or the file it is given. Found by a review (issue 10's
thirteenth session)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nbtrack.cli import show


def _nbtrack(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nbtrack", *args],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120,
        check=False,
    )  # fmt: skip


def test_nbtrack_ui_with_a_state_folder_that_is_a_file_says_so(tmp_path: Path) -> None:
    state = tmp_path / "afile"
    state.write_text("")
    result = _nbtrack(
        "ui", "--no-wait", "--tracking-uri", f"sqlite:///{tmp_path}/x.db",
        env={"NBTRACK_STATE_DIR": str(state)},
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("nbtrack ui: ")
    assert "NBTRACK_STATE_DIR" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_nbtrack_ui_with_a_malformed_server_address_answers_in_one_line() -> None:
    # urllib refuses http://[::1 (raised from inside: a traceback). A server is its own UI.
    result = _nbtrack("ui", "--no-wait", "--tracking-uri", "http://user:pw@[::1")
    assert (result.returncode, result.stdout, result.stderr) == (0, "http://[::1/\n", "")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_nbtrack_show_of_a_device_refuses_it_without_reading_it(device: str) -> None:
    if not Path(device).exists():
        pytest.skip(f"no {device} here")
    out, err = io.StringIO(), io.StringIO()
    assert show.main(device, out=out, err=err) == 1
    assert err.getvalue().startswith(f"nbtrack show: {device}: ")
    assert "not a file" in err.getvalue()


def test_the_ui_registry_without_a_home_folder_is_a_ui_start_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `nbtrack ui` and %track_ui catch UiStartError: the folder's own error, and no home
    # folder at all, must both arrive as one.
    import pwd

    from nbtrack.errors import UiStartError
    from nbtrack.ui.registry import state_dir

    def no_entry(uid: int) -> pwd.struct_passwd:
        raise KeyError(uid)

    for name in ("HOME", "XDG_CACHE_HOME", "NBTRACK_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    with pytest.raises(UiStartError, match="HOME is not set"):
        state_dir()
