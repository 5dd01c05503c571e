"""State files replaced atomically: a write that fails leaves the old file as it was and no
temporary file beside it (a real full disk is in tests/kernel/test_full_disk.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbtrack._files import read_json, write_json_atomic


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    state = tmp_path / "run.state"
    write_json_atomic(state, {"offset": 10})
    # json.dump fails half-way through writing the temporary file, as a full disk would.
    with pytest.raises(TypeError):
        write_json_atomic(state, {"offset": 20, "bad": object()})
    assert read_json(state) == {"offset": 10}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.state"]
