"""Every NBTRACK_* variable is read in one module, typed and validated once, and documented in
the README by the same table the module makes."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

import nbtrack
from nbtrack import _settings
from nbtrack.errors import NbtrackWarning

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_table_is_the_one_the_module_makes() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert _settings.markdown_table() in readme


def test_no_other_module_reads_an_nbtrack_variable() -> None:
    package = Path(nbtrack.__file__).parent
    readers = []
    for path in package.rglob("*.py"):
        if path.name == "_settings.py":
            continue
        text = path.read_text(encoding="utf-8")
        if re.search(r"environ(\.get)?\(?\[?[\"']NBTRACK_", text) or 'getenv("NBTRACK_' in text:
            readers.append(path.name)
    assert readers == []
    documented = set(re.findall(r"`(NBTRACK_[A-Z_]+)`", _settings.markdown_table()))
    assert documented == {variable.name for variable in _settings.VARIABLES}


@pytest.mark.parametrize(
    ("name", "bad", "field", "default"),
    [
        ("NBTRACK_END_WAIT", "abc", "end_wait", None),
        ("NBTRACK_END_WAIT", "-1", "end_wait", None),
        ("NBTRACK_SYNC_CPU_SHARE", "2", "sync_cpu_share", None),
        ("NBTRACK_SYNC_NICE", "high", "sync_nice", 10),
        ("NBTRACK_FLUSH_INTERVAL", "0", "flush_interval", 0.5),
        ("NBTRACK_PLOT_INTERVAL", "nan", "plot_interval", 0.5),
        ("NBTRACK_LIVE_PLOT", "maybe", "live_view", None),
        ("NBTRACK_RETRY_MAX_S", "inf", "retry_max_s", 30.0),
        # Found by a review (issue 10's thirteenth session): a user that does not exist raised
        # RuntimeError from `import nbtrack`'s settings, and an interval past what a thread can
        # wait killed the sender thread.
        ("NBTRACK_SPOOL_DIR", "~nosuchuser-nbtrack/spool", "spool_dir", None),
        ("NBTRACK_STATE_DIR", "~nosuchuser-nbtrack", "state_dir", None),
        ("NBTRACK_FLUSH_INTERVAL", "1e10", "flush_interval", 0.5),
        ("NBTRACK_SYSTEM_METRICS", "1e10", "system_metrics", 10.0),
        ("NBTRACK_END_WAIT", "1e10", "end_wait", None),
    ],
)
def test_a_bad_value_warns_once_naming_it_and_the_default_is_used(
    monkeypatch: pytest.MonkeyPatch, name: str, bad: str, field: str, default: object
) -> None:
    monkeypatch.setenv(name, bad)
    with pytest.warns(NbtrackWarning) as caught:
        value = getattr(_settings.settings(), field)
    assert value == default
    (warning,) = caught
    message = str(warning.message)
    assert f"{name}={bad!r}" in message
    assert "using the default" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert getattr(_settings.settings(), field) == default  # told once, not at every read


def test_good_values_are_typed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NBTRACK_END_WAIT", "2.5")
    monkeypatch.setenv("NBTRACK_LIVE_PLOT", "off")
    monkeypatch.setenv("NBTRACK_SYNC_NICE", "5")
    monkeypatch.setenv("NBTRACK_SPOOL_DIR", str(tmp_path))
    current = _settings.settings()
    assert current.end_wait == 2.5
    assert current.live_view is False
    assert current.sync_nice == 5
    assert current.spool_dir == tmp_path
    monkeypatch.setenv("NBTRACK_LIVE_PLOT", "1")
    assert _settings.settings().live_view is True


def test_loading_nbtrack_warns_of_a_bad_value_in_the_loading_cell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A warning from a background thread lands in whichever cell runs when it comes, or in
    # none once the loading cell has ended (a full suite run lost it so). nbtrack's start-up
    # threads are held here: the warning must come from the loading call itself.
    import threading

    from nbtrack.kernel import cell

    monkeypatch.setenv("NBTRACK_END_WAIT", "never")
    monkeypatch.setattr(_settings, "_cached", None)
    monkeypatch.setattr(_settings, "_warned", set())
    monkeypatch.setattr(cell, "_warm", False)
    monkeypatch.setattr(cell, "start_reading_environment", lambda: None)
    monkeypatch.setattr(threading.Thread, "start", lambda _self: None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cell.warm_up()
    assert [str(w.message) for w in caught if "NBTRACK_END_WAIT='never'" in str(w.message)]


def test_a_relative_xdg_cache_home_is_ignored(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The XDG spec: a relative path in an XDG variable is invalid and must be ignored (it would
    # put nbtrack's files in whatever folder the kernel was started in).
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert _settings.cache_dir() == tmp_path / ".cache" / "nbtrack"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _settings.cache_dir() == tmp_path / "xdg" / "nbtrack"


def test_no_home_folder_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # A container: HOME unset and a uid without a user database entry.
    import pwd

    def no_entry(uid: int) -> pwd.struct_passwd:
        raise KeyError(uid)

    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    with pytest.raises(OSError, match="HOME is not set") as error:
        _settings.cache_dir()
    assert "NBTRACK_SPOOL_DIR" in str(error.value)


def test_nbtrack_sync_without_a_home_folder_says_why_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pwd

    from nbtrack.journal import replay

    def no_entry(uid: int) -> pwd.struct_passwd:
        raise KeyError(uid)

    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("NBTRACK_SPOOL_DIR", raising=False)
    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    assert replay.main(None) == 1
    out = capsys.readouterr()
    lines = (out.out + out.err).strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("nbtrack sync: ")
    assert "--spool-dir" in lines[0]


def test_nbtrack_sync_given_an_unknown_users_folder_says_why_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from nbtrack.journal import replay

    assert replay.main("~nosuchuser-nbtrack/spool") == 1
    out = capsys.readouterr()
    lines = (out.out + out.err).strip().splitlines()
    assert lines == [
        "nbtrack sync: --spool-dir '~nosuchuser-nbtrack/spool': no such user's home folder"
    ]
