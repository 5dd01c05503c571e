"""While the upload is paced, the newest point of each metric goes ahead, once; the paced
upload then skips exactly those points."""

from __future__ import annotations

from array import array
from pathlib import Path

from nbtrack._model import MetricPoints
from nbtrack.journal.format import encode, metrics_line
from nbtrack.journal.preview import Preview


def _journal(path: Path, batches: list[dict[str, MetricPoints]], torn: bool = False) -> None:
    with path.open("wb") as out:
        out.write(encode({"t": "start", "experiment_name": "e", "start_time": 0}))
        for metrics in batches:
            out.write(encode(metrics_line(metrics)))
        if torn:
            out.write(b'{"t":"b","ts":["AAAA')  # a line still being written


def _points(start: int, n: int, at: float) -> MetricPoints:
    seconds = array("d", [at + i / 1000 for i in range(n)])
    return MetricPoints(
        range(start, start + n), array("d", [float(start + i) for i in range(n)]), seconds
    )


def test_the_newest_point_of_each_metric_goes_ahead_once(tmp_path: Path) -> None:
    spool = tmp_path / "run0001-abc.spool"
    _journal(spool, [{"loss": _points(0, 100, 1000.0)}, {"loss": _points(100, 50, 2000.0),
             "acc": _points(0, 10, 2000.0)}], torn=True)  # fmt: skip
    preview = Preview()
    ahead = preview.newest(spool)
    assert sorted((m.key, m.step, m.value) for m in ahead) == [
        ("acc", 9, 9.0),
        ("loss", 149, 149.0),
    ]
    preview.sent_ahead(ahead)  # the store took them
    assert preview.newest(spool) == []  # nothing newer: nothing sent again

    from mlflow.entities import Metric

    paced = [Metric("loss", float(s), 2000000 + s - 100, s) for s in range(100, 150)]
    kept = preview.skip_sent(paced)
    assert [m.step for m in kept] == list(range(100, 149))  # step 149 went ahead
    assert preview.sent == {("acc", 9, 2000009, 9.0)}


def test_a_journal_without_metrics_previews_nothing(tmp_path: Path) -> None:
    spool = tmp_path / "run0001-abc.spool"
    _journal(spool, [])
    assert Preview().newest(spool) == []


def test_points_whose_preview_failed_are_sent_by_the_paced_upload(tmp_path: Path) -> None:
    # The store was down when the preview went out: those points are not "sent ahead", so the
    # paced upload must not skip them (they would be lost), and the next preview tries again.
    spool = tmp_path / "run0001-abc.spool"
    _journal(spool, [{"loss": _points(0, 100, 1000.0)}])
    preview = Preview()
    ahead = preview.newest(spool)  # ... and log_batch raised: sent_ahead is never called
    assert [m.step for m in ahead] == [99]
    from mlflow.entities import Metric

    paced = [Metric("loss", float(s), 1000000 + s, s) for s in range(100)]
    assert preview.skip_sent(paced) == paced
    retried = preview.newest(spool)
    assert [m.step for m in retried] == [99]
    preview.sent_ahead(retried)
    assert preview.newest(spool) == []
    assert [m.step for m in preview.skip_sent(paced)] == list(range(99))


def test_points_alike_but_for_their_value_are_not_taken_for_the_one_sent_ahead(
    tmp_path: Path,
) -> None:
    # One step logged three times within a millisecond: the preview sends the last value; the
    # paced upload must skip that one, not the first that looks like it (it was lost).
    spool = tmp_path / "run0001-abc.spool"
    at = 1000.0
    same = MetricPoints(array("q", [7, 7, 7]), array("d", [1.0, 2.0, 3.0]), array("d", [at] * 3))
    _journal(spool, [{"loss": same}])
    preview = Preview()
    ahead = preview.newest(spool)
    assert [(m.step, m.value) for m in ahead] == [(7, 3.0)]
    preview.sent_ahead(ahead)
    from mlflow.entities import Metric

    paced = [Metric("loss", value, 1000000, 7) for value in (1.0, 2.0, 3.0)]
    assert [m.value for m in preview.skip_sent(paced)] == [1.0, 2.0]
