"""The record of a run: the display bundle a tracked cell leaves in the saved notebook.

``build_bundle`` turns a run into one display bundle:

- ``application/vnd.nbtrack.run+json``: the record itself (docs/record-schema.md), read back by
  the lab extension and ``nbtrack show``;
- ``text/html``: a summary card with the chart, for nbconvert/nbviewer, GitHub, VS Code and
  JupyterLab without the extension;
- ``image/svg+xml``: the chart alone;
- ``text/plain``: a few lines for terminals.

The three renderings are drawn from the JSON record, not from the run, so what any viewer shows
is exactly what the file holds. A notebook is shared with anyone: nothing here loads a script or
a remote resource, every text from the run is escaped, and credentials never get in.

Where each part lives:

- ``schema``: MIME type, schema version, what a record is built from, reading one back;
- ``metrics``: metric names: goals, grouping into chart panels, colours;
- ``build``: run -> JSON record (decimation, size budget) -> display bundle;
- ``text``, ``html``, ``svg``: the three renderings, with ``format`` for what they share.
"""

from __future__ import annotations

from nbtrack.errors import InvalidRecordError
from nbtrack.record.build import build_bundle
from nbtrack.record.html import render_html
from nbtrack.record.metrics import group_metrics, metric_goal, series_color
from nbtrack.record.schema import (
    MIME_TYPE,
    SCHEMA_VERSION,
    RecordSource,
    parse_record,
)
from nbtrack.record.svg import render_chart
from nbtrack.record.text import render_text

__all__ = [
    "MIME_TYPE",
    "SCHEMA_VERSION",
    "InvalidRecordError",
    "RecordSource",
    "build_bundle",
    "group_metrics",
    "metric_goal",
    "parse_record",
    "render_chart",
    "render_html",
    "render_text",
    "series_color",
]
