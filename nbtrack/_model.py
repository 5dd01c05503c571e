"""What nbtrack knows about a run, as plain data: identity, params, tags, status, curves.

Everything else in the package reads or fills these objects; this module imports nothing else
of nbtrack at run time, so any module may use it. It also holds MLflow's rules for names and
values, checked here once so that a bad name fails the call that used it instead of an upload
minutes later.
"""

from __future__ import annotations

import enum
import math
import numbers
import posixpath
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from array import array

    from nbtrack._curves import Curve

# MLflow's own limits (mlflow.utils.validation).
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 5000
MAX_STEP = 2**63 - 1
_KEY_CHARS = re.compile(r"^[/\w.\- ]+$")
_TRUNCATION_MARKER = "...[truncated by nbtrack]"


# How far a run's upload got, as the record and the live view show it.
SYNC_STATES = ("synced", "syncing", "offline")


class Status(enum.Enum):
    """A run's status, with MLflow's names for it."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


@dataclass(frozen=True)
class RunFailure:
    """Why a run did not finish: shown in its record and stored with it in MLflow.

    ``traceback`` is empty where only the type and message are known (a record read back from
    a notebook); ``step`` is the last step any metric reached, when known.
    """

    type: str
    message: str
    traceback: str = ""
    step: int | None = None


@dataclass
class MetricPoints:
    """Points of one metric from one batch, in the order logged.

    ``steps`` is a ``range`` in the common case (implicit consecutive steps), and ``seconds``
    (the unix time of each point) is one array shared by every metric of the same calls, so a
    batch is built without a Python-level loop over its points.
    """

    steps: range | array[int]
    values: array[float]
    seconds: array[float]


@dataclass
class Batch:
    """Everything a run logged since the previous batch, in the form the journal stores."""

    metrics: dict[str, MetricPoints] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    # (staged file or folder, destination folder among the run's artifacts or None)
    artifacts: list[tuple[str, str | None]] = field(default_factory=list)
    # Paths among the run's artifacts to delete (superseded checkpoints), after the above.
    deletions: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.metrics or self.params or self.tags or self.artifacts or self.deletions)


@dataclass
class Run:
    """One execution of a tracked cell.

    ``run_id`` and ``experiment_id`` are None until the sync process has created the run in
    the store (a moment after the cell starts, or later while the store is unreachable). An
    experiment chosen by id (``MLFLOW_EXPERIMENT_ID``) is known by its id from the start and
    by its name ("" until then) once the sync process has looked it up; if the store has no
    such experiment, the run goes to ``fallback_experiment`` (the notebook's).
    """

    run_name: str
    experiment_name: str
    tracking_uri: str
    run_id: str | None = None
    experiment_id: str | None = None
    fallback_experiment: str | None = None
    ui_url: str | None = None
    notebook_path: str | None = None
    cell_id: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    # Names of the params that came from earlier cells of the session, not the tracked cell.
    params_from_session: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    start_time_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    end_time_ms: int | None = None
    status: Status = Status.RUNNING
    failure: RunFailure | None = None
    live_view: bool = True
    # A sweep's trial: the journal (its key in the same session folder) of its parent run,
    # whose id the sync process puts into the trial's mlflow.parentRunId tag.
    parent_journal: str | None = None
    # Filled by the sender: per-metric history and the next implicit step of each metric.
    curves: dict[str, Curve] = field(default_factory=dict)
    next_step: dict[str, int] = field(default_factory=dict)
    # "syncing", "synced" or "offline", and about how many points the store does not have yet.
    sync_state: str = "syncing"
    pending_points: int = 0
    # Why the store refused this run for good (e.g. its experiment is deleted), if it did.
    store_problem: str | None = None
    # What could not be made durable (a full or read-only disk under the journal), and why:
    # never stored, so the run ends FAILED and its record says so.
    lost_points: int = 0
    lost_items: int = 0
    lost_reason: str | None = None

    @property
    def ended(self) -> bool:
        return self.status is not Status.RUNNING

    @property
    def last_step(self) -> int | None:
        return max((int(c.last_step) for c in self.curves.values() if c.count), default=None)

    def add_params(self, params: Mapping[str, str]) -> dict[str, str]:
        """Record params (already text, already redacted); return the new ones.

        Raises ValueError for a name MLflow would reject, or a param that already has another
        value (MLflow params cannot change).
        """
        new = {}
        for key, text in params.items():
            check_key(key, "param")
            previous = self.params.get(key)
            if previous is not None and previous != text:
                msg = (
                    f"param {key!r} was already logged as {previous!r} in this run and MLflow "
                    f"params cannot change; log {text!r} under another name, or as a metric"
                )
                raise ValueError(msg)
            if previous is None:
                new[key] = text
        self.params.update(new)
        return new


def check_key(key: object, kind: str) -> None:
    """Raise a clear ValueError for a metric/param/tag name MLflow would reject."""
    problem = None
    if not isinstance(key, str) or not key:
        problem = "it is empty or not a string"
    elif len(key) > MAX_KEY_LENGTH:
        problem = f"it is {len(key)} characters long, MLflow allows {MAX_KEY_LENGTH}"
    elif not _KEY_CHARS.match(key):
        problem = "MLflow allows only letters, digits, '_', '-', '.', ' ' and '/' in names"
    elif posixpath.normpath(key) != key or key == "." or ".." in key or key[0] == "/":
        # MLflow's rule: a name is a normal relative path (no '//', '/./', trailing '/').
        problem = (
            "MLflow takes names as paths: no '..', '.' or empty parts ('a//b', 'a/./b'), and no "
            "'/' at either end"
        )
    if problem:
        msg = f"invalid {kind} name {key!r}: {problem}"
        raise ValueError(msg)


def value_text(value: object, limit: int = MAX_PARAM_VALUE_LENGTH) -> str:
    """A param or tag value as MLflow stores it: text, cut at ``limit`` with a visible marker
    (MLflow would cut it silently, or refuse the whole batch)."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, tuple | list | dict | set | frozenset):
        text = repr(value)
    else:
        text = str(value)
    if len(text) > limit:
        text = text[: limit - len(_TRUNCATION_MARKER)] + _TRUNCATION_MARKER
    return text


def metric_value(key: str, value: Any) -> float:
    """A real number (int, bool, numpy scalar, Fraction, Decimal...) as the float64 MLflow
    stores; anything else is refused with a message naming the metric."""
    kind = type(value)
    real = (
        isinstance(value, numbers.Real)
        # Decimal is a real number that the numbers module does not register as one.
        or (kind.__module__ == "decimal" and kind.__name__ == "Decimal")
        or (kind.__module__ == "numpy" and getattr(value, "ndim", 1) == 0
            and value.dtype.kind in "biuf")
    )  # fmt: skip
    if not real:
        msg = (
            f"metric {key!r} must be a number, got {kind.__name__} {value!r:.80}. "
            "Pass a float, an int, a numpy scalar or a one-element tensor."
        )
        raise TypeError(msg)
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    except ValueError:  # a signalling NaN Decimal
        number = math.nan
    if math.isinf(number) and value != number:
        # A finite number beyond float64's range (about 1.8e308: a huge int, Fraction or
        # Decimal, a numpy longdouble) would otherwise be stored as inf, a value it never had.
        raise ValueError(_too_large(key, value))
    return number


def _too_large(key: str, value: Any) -> str:
    if isinstance(value, numbers.Rational):
        # (str() of a huge int is refused past 4300 digits; its bit length is not.)
        digits = int(int(abs(math.trunc(value))).bit_length() * math.log10(2)) + 1
        size = f"this value has about {digits} digits"
    else:
        size = f"got {value!r:.60}"
    return (
        f"metric {key!r} is too large to store: MLflow keeps metrics as float64, up to about "
        f"1.8e308, and {size}"
    )


def checked_step(step: object) -> int:
    """A step as the int64 MLflow stores; anything else is refused with the range it takes."""
    if (
        isinstance(step, bool)
        or not isinstance(step, numbers.Integral)
        or not 0 <= int(step) <= MAX_STEP
    ):
        msg = f"step must be an integer from 0 to 2**63 - 1 (MLflow's int64), got {step!r}"
        raise TypeError(msg)
    return int(step)
