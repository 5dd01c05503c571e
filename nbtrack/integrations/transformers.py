"""``nbtrack.transformers.Callback``: Hugging Face's ``Trainer`` logging into the tracked run.

Imports ``transformers`` when this module is imported, which only a user of it does;
``import nbtrack`` never does.
"""

from __future__ import annotations

import numbers
import re
from typing import Any

from transformers import TrainerCallback

from nbtrack import _buffer
from nbtrack.integrations._common import log_params_leniently

__all__ = ["Callback"]

# Characters MLflow refuses in a name, replaced as transformers' own MLflow callback does.
_REFUSED = re.compile(r"[^/\w.\- ]")


class Callback(TrainerCallback):  # type: ignore[misc]
    """A ``Trainer`` callback for a ``Trainer.train()`` inside a ``%%track`` cell.

    ``Trainer(..., callbacks=[nbtrack.transformers.Callback()])``: what the Trainer logs
    (``loss``, ``learning_rate``, ``grad_norm``, ``epoch``, ``eval_*``, with the Trainer's
    global step) takes ``nbtrack.log``'s fast path into the cell's run, its live view and its
    record; the training arguments become params at the start of training, and the model's
    config too, under ``config/``. Only the main process logs.

    ``report_to="mlflow"`` also works in a tracked cell: Transformers' MLflow callback finds
    the tracked run active and logs into it, on the same fast path.
    """

    def on_train_begin(  # Transformers' signature
        self,
        args: Any,
        state: Any,
        control: Any,  # noqa: ARG002
        model: Any = None,
        **kwargs: Any,  # noqa: ARG002
    ) -> None:
        if not state.is_world_process_zero:
            return
        params = dict(args.to_sanitized_dict())
        config = getattr(model, "config", None)
        if config is not None and hasattr(config, "to_dict"):
            params.update({f"config/{k}": v for k, v in config.to_dict().items()})
        log_params_leniently({_REFUSED.sub("_", str(k)): v for k, v in params.items()}, "Trainer")

    def on_log(  # Transformers' signature
        self,
        args: Any,  # noqa: ARG002
        state: Any,
        control: Any,  # noqa: ARG002
        logs: Any = None,
        **kwargs: Any,  # noqa: ARG002
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        values = {
            _REFUSED.sub("_", str(key)): float(value)
            for key, value in logs.items()
            if _is_number(value)
        }
        if values:
            _buffer.log(values, step=int(state.global_step))


def _is_number(value: object) -> bool:
    # Transformers logs numbers and, at the end of training, a few strings: numbers only.
    return not isinstance(value, bool | str) and isinstance(value, numbers.Real)
