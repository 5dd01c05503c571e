"""Every run a tracked cell starts ends exactly once, by that cell's own end: not by a nested
``run_cell``, not left RUNNING by an interrupt, however it is timed."""

from __future__ import annotations

from typing import Any

import pytest
from helpers.kernels import execute, notebook, text_of

pytestmark = pytest.mark.kernel


def _runs(client: Any, experiment: str) -> list[Any]:
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else list(client.search_runs([exp.experiment_id]))


def _values(client: Any, run_id: str, key: str) -> list[float]:
    return [m.value for m in client.get_metric_history(run_id, key)]


def test_only_the_tracked_cells_own_end_ends_its_run(store, client):
    path = notebook(
        "import nbtrack\nfrom IPython.core.error import UsageError",
        "%%track -e outer\n"
        "nbtrack.log(loss=1.0)\n"
        # A nested cell fires IPython's cell events too; its end is not ours.
        "get_ipython().run_cell('y = 1')\n"
        "nbtrack.log(loss=2.0)\n"
        "failed = get_ipython().run_cell('1 / 0')\n"
        "nbtrack.log(loss=3.0)\n"
        # A nested tracked cell is refused, through either door; the outer run goes on.
        "inner = get_ipython().run_cell('%%track -e inner\\nnbtrack.log(z=1.0)')\n"
        "nbtrack.log(loss=4.0)\n"
        "try:\n"
        "    get_ipython().run_cell_magic('track', '-e inner', 'nbtrack.log(z=2.0)')\n"
        "except UsageError as error:\n"
        "    magic_error = str(error)\n"
        "nbtrack.log(loss=5.0)\n"
        "print('outer status', nbtrack.active_run().status)",
        "print('cell error:', repr(inner.error_in_exec))\n"
        "print('magic error:', magic_error)\n"
        "print('y =', y, type(failed.error_in_exec).__name__)",
        # The kernel tracks normally afterwards, in both forms.
        "%%track -e outer\nnbtrack.log(loss=6.0)",
        "get_ipython().run_cell_magic('track', '-e outer', 'nbtrack.log(loss=7.0)')",
        "assert nbtrack.wait(60)",
    )
    nb = execute(path)
    assert "outer status RUNNING" in text_of(nb.cells[1])
    report = text_of(nb.cells[2])
    for form in ("cell error: UsageError(", "magic error: "):
        line = next(line for line in report.splitlines() if line.startswith(form))
        assert "nested" in line, line
        assert "the outer run goes on" in line, line
    assert "y = 1 ZeroDivisionError" in report

    assert _runs(client, "inner") == []
    runs = sorted(_runs(client, "outer"), key=lambda r: r.info.start_time)
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED", "FINISHED"]
    assert _values(client, runs[0].info.run_id, "loss") == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert "z" not in runs[0].data.metrics
    assert _values(client, runs[1].info.run_id, "loss") == [6.0]
    assert _values(client, runs[2].info.run_id, "loss") == [7.0]
