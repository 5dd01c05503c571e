"""``nbtrack.lightning.Logger``: a Lightning logger that writes into the tracked run.

Imports Lightning (``lightning.pytorch``, else the older ``pytorch_lightning``) when this module
is imported, which only a user of Lightning does; ``import nbtrack`` never does.
"""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Mapping
from typing import Any

from nbtrack import _api, _buffer
from nbtrack.integrations._common import flat_params, log_params_leniently

try:
    from lightning.pytorch.loggers.logger import Logger as _LightningLogger
    from lightning.pytorch.utilities import rank_zero_only
except ImportError:  # the older distribution of the same library
    from pytorch_lightning.loggers.logger import Logger as _LightningLogger
    from pytorch_lightning.utilities import rank_zero_only

__all__ = ["Logger"]


class Logger(_LightningLogger):  # type: ignore[misc]
    """A Lightning logger for a ``Trainer`` inside a ``%%track`` cell.

    ``Trainer(logger=nbtrack.lightning.Logger())``: the metrics Lightning logs
    (``self.log(...)`` in the module, with Lightning's step) take ``nbtrack.log``'s fast path
    into the cell's run, its live view and its record; the module's hyperparameters
    (``save_hyperparameters()``) become params, nested ones flattened with ``/``. Only the main
    process logs (rank zero), as with Lightning's own loggers.

    Lightning's own ``MLFlowLogger`` also works in a tracked cell: it joins the tracked run.
    """

    def __init__(self, prefix: str = "") -> None:
        super().__init__()
        self._prefix = prefix

    @property
    def name(self) -> str | None:
        """The tracked run's experiment (None outside a tracked cell)."""
        run = _api.active_run()
        return None if run is None else run.experiment_name

    @property
    def version(self) -> str | None:
        """The tracked run's name (None outside a tracked cell)."""
        run = _api.active_run()
        return None if run is None else run.run_name

    @property
    def experiment(self) -> Any:
        """``nbtrack.active_run()``: the tracked run, read-only."""
        return _api.active_run()

    @rank_zero_only  # type: ignore[untyped-decorator]
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        values = {f"{self._prefix}{key}": value for key, value in metrics.items()}
        _buffer.log(values, step=step)

    @rank_zero_only  # type: ignore[untyped-decorator]
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:  # noqa: ARG002 - Lightning's signature
        if isinstance(params, Namespace):
            params = vars(params)
        if not isinstance(params, Mapping) or not params:
            return
        log_params_leniently(flat_params(params), "Lightning hyperparameter")
