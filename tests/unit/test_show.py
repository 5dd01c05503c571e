"""`nbtrack show NOTEBOOK`: the runs recorded in a saved notebook, read without kernel or store."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest

from nbtrack._curves import Curve
from nbtrack._model import RunFailure
from nbtrack.cli import show
from nbtrack.cli.show import format_table, main, records_in_notebook
from nbtrack.record import MIME_TYPE, RecordSource, build_bundle


def _bundle(name: str, status: str = "FINISHED", **extra: Any) -> dict[str, Any]:
    loss, acc = Curve(), Curve()
    steps = np.arange(100)
    loss.extend(steps.tolist(), (1.0 / (steps + 1)).tolist())
    acc.extend([0, 1, 2], [0.5, 0.9, 0.85])
    source = RecordSource(
        run_id="0123456789abcdef0123456789abcdef",
        run_name=name,
        experiment_id="1",
        experiment_name="mnist",
        status=status,
        start_time_ms=1_763_779_200_000,
        end_time_ms=1_763_779_230_000,
        tracking_uri=None,
        ui_url=None,
        notebook_path="train.ipynb",
        cell_id=None,
        params={"lr": "0.003", "epochs": "5", "batch_size": "64", "optimizer": "adam"},
        curves={"grad_norm": Curve(), "train/loss": loss, "val/acc": acc},
        **extra,
    )
    return build_bundle(source)


def _write_notebook(path: Path, outputs_per_cell: list[list[dict[str, Any]]]) -> Path:
    cells = [nbformat.v4.new_markdown_cell("# Training")]
    for outputs in outputs_per_cell:
        cell = nbformat.v4.new_code_cell("%%track\ntrain()")
        cell.outputs = [nbformat.v4.new_output("display_data", data=data) for data in outputs]
        cells.append(cell)
    notebook = nbformat.v4.new_notebook(cells=cells)
    nbformat.write(notebook, path)
    return path


def _run(path: Path, **options: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(str(path), out=out, err=err, **options)
    return code, out.getvalue(), err.getvalue()


def test_lists_every_recorded_run_with_status_params_and_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    failed = _bundle("big-lr", "FAILED", error=RunFailure("FloatingPointError", "nan", step=40))
    notebook = _write_notebook(
        tmp_path / "train.ipynb",
        [[_bundle("baseline")], [{"text/plain": "not a record"}], [failed]],
    )
    code, out, err = _run(notebook)

    assert code == 0, err
    assert err == ""
    header, first, second = out.splitlines()
    assert header.split() == ["cell", "run", "status", "params", "metrics"]
    cell_id = nbformat.read(notebook, as_version=4).cells[1].id
    assert first.startswith(f"1 {cell_id[:8]}")
    assert "baseline (01234567)" in first
    assert "FINISHED" in first
    # A saved notebook has its JSON keys sorted, so the first params are alphabetical.
    assert "batch_size=64, epochs=5, lr=0.003, +1" in first
    # Metrics with a goal first; best shown when it differs from the last value.
    assert "train/loss=0.01, val/acc=0.85 (best 0.9), grad_norm=-" in first
    assert second.startswith("3 ")
    assert "FAILED FloatingPointError" in second


def test_the_nbtrack_command_prints_the_table(tmp_path: Path) -> None:
    notebook = _write_notebook(tmp_path / "n.ipynb", [[_bundle("baseline")]])
    env = dict(os.environ, COLUMNS="200", MLFLOW_DISABLE_TELEMETRY="true")
    result = subprocess.run(
        [sys.executable, "-m", "nbtrack", "show", str(notebook)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "baseline (01234567)" in result.stdout


def test_table_fits_a_narrow_terminal(tmp_path: Path) -> None:
    notebook = _write_notebook(tmp_path / "n.ipynb", [[_bundle("a-rather-long-run-name" * 3)]])
    rows = records_in_notebook(notebook)
    assert len(rows) == 1
    table = format_table(rows, width=60)
    assert all(len(line) <= 60 for line in table.splitlines())
    assert "…" in table
    assert "FINISHED" in table


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    code, out, err = _run(tmp_path / "nope.ipynb")
    assert code == 1
    assert out == ""
    assert "nope.ipynb: no such file" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [("{broken", "not valid JSON"), ('{"cells": 3}', "not a Jupyter notebook"), ("[]", "not a")],
)
def test_unreadable_notebook_is_an_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.ipynb"
    path.write_text(content)
    code, _, err = _run(path)
    assert code == 1
    assert message in err


def test_folder_is_an_error(tmp_path: Path) -> None:
    code, _, err = _run(tmp_path)
    assert code == 1
    assert "is a folder" in err


def test_notebook_without_records_is_an_error(tmp_path: Path) -> None:
    notebook = _write_notebook(tmp_path / "plain.ipynb", [[{"text/plain": "42"}]])
    code, out, err = _run(notebook)
    assert code == 1
    assert out == ""
    assert "no nbtrack runs recorded" in err


def test_a_damaged_record_is_reported_without_hiding_the_others(tmp_path: Path) -> None:
    damaged = _bundle("damaged")
    damaged[MIME_TYPE]["run"]["status"] = "EXPLODED"
    notebook = _write_notebook(tmp_path / "n.ipynb", [[damaged], [_bundle("fine")]])
    code, out, err = _run(notebook)
    assert code == 0
    assert "UNREADABLE" in out
    assert "fine (01234567)" in out
    assert "cell 1: not a valid nbtrack record" in err
    assert "'EXPLODED' is not one of" in err


def test_only_damaged_records_is_an_error(tmp_path: Path) -> None:
    damaged = _bundle("damaged")
    damaged[MIME_TYPE]["schema"] = 7
    notebook = _write_notebook(tmp_path / "n.ipynb", [[damaged]])
    code, _, err = _run(notebook)
    assert code == 1
    assert "upgrade nbtrack" in err


def test_escape_sequences_in_a_record_never_reach_the_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    bundle = _bundle("\x1b]0;pwned\x07\x1b[31mred\nrun")
    notebook = _write_notebook(tmp_path / "n.ipynb", [[bundle]])
    code, out, _ = _run(notebook)
    assert code == 0
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "?]0;pwned??[31mred run" in out


def test_one_run_in_detail_by_name_or_id(tmp_path: Path) -> None:
    bundle = _bundle("baseline")
    bundle[MIME_TYPE]["ui_url"] = "http://127.0.0.1:5000/#/experiments/1/runs/x"
    other = _bundle("other")
    other[MIME_TYPE]["run"]["id"] = "f" * 32
    notebook = _write_notebook(tmp_path / "n.ipynb", [[other], [bundle]])
    for key in ("baseline", "0123456789abcdef0123456789abcdef"[:8]):
        code, out, err = _run(notebook, run=key)
        assert code == 0, err
    code, out, _ = _run(notebook, run="baseline")
    lines = out.splitlines()
    assert lines[0] == "run 'baseline': FINISHED in 30.0 s"
    assert "  MLflow     http://127.0.0.1:5000/#/experiments/1/runs/x" in lines
    # All params, and each metric's last and best with their steps, at the record's precision.
    for param in ("lr", "epochs", "batch_size", "optimizer"):
        assert any(line.split()[:1] == [param] for line in lines)
    loss = next(line for line in lines if line.strip().startswith("train/loss"))
    assert loss.split()[1:5] == ["0.01", "@99", "0.01", "@99"]
    code, _, err = _run(notebook, run="nope")
    assert code == 1
    assert "no run named 'nope'" in err


def test_json_for_scripts_has_every_run_without_curves(tmp_path: Path) -> None:
    damaged = _bundle("damaged")
    damaged[MIME_TYPE]["run"]["status"] = "EXPLODED"
    notebook = _write_notebook(tmp_path / "n.ipynb", [[_bundle("a")], [damaged]])
    code, out, _ = _run(notebook, as_json=True)
    assert code == 0
    runs = json.loads(out)
    assert [r.get("record", {}).get("run", {}).get("name") for r in runs] == ["a", None]
    assert runs[1]["problem"].startswith("not a valid nbtrack record")
    metrics = runs[0]["record"]["metrics"]
    assert metrics["train/loss"]["best"] == 0.01
    assert all("curve" not in m for m in metrics.values())
    code, out, _ = _run(notebook, run="a", as_json=True)
    assert json.loads(out)["record"]["params"]["lr"] == "0.003"


def test_a_51_mb_record_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    huge = _bundle("huge")
    huge[MIME_TYPE]["metrics"]["train/loss"]["curve"] = {
        "steps": list(range(1_400_000)),
        "values": [0.123456] * 1_400_000,
    }
    notebook = _write_notebook(tmp_path / "n.ipynb", [[huge], [_bundle("fine")]])
    size = notebook.stat().st_size
    assert size > 51 * 2**20
    tracemalloc.start()
    try:
        code, out, err = _run(notebook)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == 0
    assert "fine (01234567)" in out
    (line,) = err.splitlines()
    assert line.startswith("nbtrack show: cell 1: refused: the record is 5")
    # The file is read once; the huge record is never parsed into Python objects.
    assert peak < 1.3 * size


def test_a_record_nested_100k_levels_deep_is_refused_with_one_line(tmp_path: Path) -> None:
    notebook = _write_notebook(tmp_path / "n.ipynb", [[_bundle("fine")]])
    text = notebook.read_text()
    deep = "[" * 100_000 + "]" * 100_000
    assert text.count('"params": {') == 1
    notebook.write_text(text.replace('"params": {', f'"deep": {deep},\n"params": {{'))
    code, out, err = _run(notebook)
    assert code == 1
    assert out == ""
    assert err.splitlines() == [
        f"nbtrack show: {notebook}: refused, its JSON is nested deeper than any notebook's"
    ]


# ------------------------------------------------------------------ hostile notebooks


class _CountingBytes(bytes):
    """A file's bytes that count how many bytes their searches read: a scan of the file must
    read each byte a bounded number of times, however many record keys it holds."""

    def __init__(self, _: bytes) -> None:
        self.read = 0

    def find(self, sub: Any, start: Any = 0, end: Any = None) -> int:  # type: ignore[override]
        end = len(self) if end is None else end
        found = super().find(sub, start, end)
        self.read += (found + len(sub) if found >= 0 else end) - start
        return found

    def rfind(self, sub: Any, start: Any = 0, end: Any = None) -> int:  # type: ignore[override]
        end = len(self) if end is None else end
        found = super().rfind(sub, start, end)
        self.read += end - (found if found >= 0 else start)
        return found


def _keys_that_never_close(n: int, indent: Any) -> bytes:
    """A notebook of ``n`` record keys, each on its own line, whose objects never close on a
    line of their own (as nbformat would close them)."""
    cell = (
        '{"cell_type": "code", "id": "c%d", "metadata": {}, "source": "", "outputs": '
        '[{"output_type": "display_data", "metadata": {}, "data": {\n'
        '%s"application/vnd.nbtrack.run+json": {\n"schema": 0}}}]}'
    )
    body = ",\n".join(cell % (i, indent(i)) for i in range(n))
    return ('{"cells": [\n' + body + '\n], "metadata": {}, "nbformat": 4}\n').encode()


@pytest.mark.parametrize(
    "indent", [lambda _: " " * 6, lambda i: " " * (i % 100)], ids=["one indent", "many indents"]
)
def test_record_keys_that_never_close_are_scanned_in_linear_time(indent: Any) -> None:
    from nbtrack.record.notebook import _without_huge_records

    data = _CountingBytes(_keys_that_never_close(3000, indent))
    assert _without_huge_records(data) == data
    # Was a search to the end of the file per key: ~1500 times the file (8 MB: 88 s).
    assert data.read < 12 * len(data)


def test_a_compact_notebook_of_millions_of_values_is_refused_before_it_is_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbtrack.record.notebook as reading

    # Compact JSON (no Jupyter saves it so) is not cut record by record: parsed, its 3 million
    # "{}" would take ~30 times the file's size in Python objects (30 MB: 1.5 GB).
    notebook = _write_notebook(tmp_path / "n.ipynb", [[_bundle("fine")]])
    text = json.dumps(json.loads(notebook.read_text()))
    blob = "[" + ",".join(["{}"] * 3_000_000) + "]"
    notebook.write_text(text.replace('"params": {', f'"blob": {blob}, "params": {{', 1))

    def never(*_: object, **__: object) -> None:
        raise AssertionError("the notebook must be refused before json.loads builds it")

    monkeypatch.setattr(reading, "json", type("json", (), {"loads": staticmethod(never)}))
    code, out, err = _run(notebook)
    assert code == 1
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith(f"nbtrack show: {notebook}: refused, it holds over ")


def test_validation_stops_at_the_notebooks_budget_with_one_line_per_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbtrack.record.schema import MAX_NOTEBOOK_VALUES

    validated: list[str] = []

    class Spy:  # jsonschema takes ~10 us a value: count what it is asked to validate
        def iter_errors(self, record: dict[str, Any]) -> Any:
            validated.append(record["run"]["name"])
            return iter(())

    monkeypatch.setattr("nbtrack.record.schema._validator", Spy)
    cells = []
    for i in range(4):
        bundle = _bundle(f"big{i}")
        bundle[MIME_TYPE]["padding"] = [0] * (MAX_NOTEBOOK_VALUES * 3 // 10)
        cells.append([bundle])
    notebook = _write_notebook(tmp_path / "n.ipynb", cells)
    notebook.write_text(json.dumps(json.loads(notebook.read_text())))  # compact: no record cut
    code, out, err = _run(notebook)
    assert code == 0
    assert validated == ["big0", "big1", "big2"]
    (line,) = err.splitlines()
    assert line.startswith(f"nbtrack show: cell 4: refused: this notebook's records hold over "
                           f"{MAX_NOTEBOOK_VALUES:,} values")  # fmt: skip
    assert "big2" in out


@pytest.mark.parametrize(
    "value",
    [
        "nbtrack: record of x",
        "nbtrack: record of",
        "nbtrack: record of 9999999999999999999999999999999999999999 bytes left unread",
        "[" * 100_000 + "]" * 100_000,  # JSON text nested beyond Python's parser
        "[" + "0," * 1_500_000 + "0]",  # JSON text far larger than any record
    ],
    ids=["forged cut", "forged cut, no size", "forged cut, huge size", "deep text", "huge text"],
)
def test_a_crafted_record_is_one_line_and_hides_no_other(tmp_path: Path, value: str) -> None:
    notebook = _write_notebook(tmp_path / "n.ipynb", [[_bundle("fine")], [{MIME_TYPE: value}]])
    code, out, err = _run(notebook)
    assert code == 0
    assert "fine (01234567)" in out
    (line,) = err.splitlines()
    assert line.startswith("nbtrack show: cell 2: ")
    assert len(line) < 300


@pytest.mark.parametrize(
    ("field", "value", "status"),
    [
        ("duration_s", "NaN", "FINISHED"),
        ("duration_s", "1e400", "FAILED"),
        ("duration_s", "-Infinity", "KILLED"),
        ("start_time", "100000000000000000000", "RUNNING"),
        ("start_time", "100000000000000000", "FINISHED"),
        ("end_time", "100000000000000000", "FINISHED"),
    ],
)
def test_times_no_clock_can_hold_are_refused_with_one_line(
    tmp_path: Path, field: str, value: str, status: str
) -> None:
    bad = _bundle("bad", status=status)
    bad[MIME_TYPE]["run"].update({"id": "f" * 32, field: "@@"})
    notebook = _write_notebook(tmp_path / "n.ipynb", [[_bundle("fine")], [bad]])
    notebook.write_text(notebook.read_text().replace('"@@"', value))  # JSON that Python reads
    code, out, err = _run(notebook)
    assert code == 0
    assert "fine (01234567)" in out
    (line,) = err.splitlines()
    assert line.startswith("nbtrack show: cell 2: ")
    code, out, err = _run(notebook, run="bad")
    assert code == 1
    assert "no run named 'bad'" in err
    code, out, _ = _run(notebook, run="fine")
    assert code == 0
    assert out.startswith("run 'fine': FINISHED in 30.0 s")


# Found by an attacker's review (issue 10's thirteenth session).


def test_a_metric_without_a_count_is_shown_in_detail(tmp_path: Path) -> None:
    # The schema lets a count be null (the server API writes one): `--run` raised TypeError.
    bundle = _bundle("baseline")
    bundle[MIME_TYPE]["metrics"]["train/loss"]["count"] = None
    notebook = _write_notebook(tmp_path / "n.ipynb", [[bundle]])
    code, out, err = _run(notebook, run="baseline")
    assert (code, err) == (0, "")
    assert any(line.strip().startswith("train/loss") for line in out.splitlines())


def test_a_notebooks_name_never_brings_escape_sequences_to_the_terminal(tmp_path: Path) -> None:
    name = "\x1b]0;pwned\x07\x1b[2Jshared.ipynb"
    notebook = _write_notebook(tmp_path / name, [[{"text/plain": "42"}]])
    code, out, err = _run(notebook)
    assert code == 1
    assert "no nbtrack runs recorded" in err
    assert "\x1b" not in err + out
    assert "\x07" not in err + out


def test_megabyte_long_names_and_values_fit_the_terminal_in_few_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The table narrowed its widest column one character per pass: 4.4 s for names of a
    # million characters, 70 s for 24 million (a compact notebook under the size limit).
    monkeypatch.setenv("COLUMNS", "120")
    bundle = _bundle("r" * 1_000_000)
    record = bundle[MIME_TYPE]
    record["params"]["note"] = "p" * 1_000_000
    long = "m" * 1_000_000
    record["metrics"][long] = record["metrics"].pop("val/acc")
    record["panels"] = [[long if n == "val/acc" else n for n in p] for p in record["panels"]]
    notebook = _write_notebook(tmp_path / "n.ipynb", [[bundle]])
    compact = json.dumps(json.loads(notebook.read_text(encoding="utf-8")))  # as a script writes
    notebook.write_text(compact, encoding="utf-8")
    passes = 0

    def counted_max(*args: Any, **kwargs: Any) -> Any:
        nonlocal passes
        passes += 1
        return max(*args, **kwargs)

    monkeypatch.setattr(show, "max", counted_max, raising=False)
    code, out, err = _run(notebook)
    assert code == 0, err
    assert max(len(line) for line in out.splitlines()) <= 120
    assert passes < 2_000  # was one pass per character cut: ~3 million
